"""Users' ratings of their closed cases: one per case, a rating from 1 to 5 and an optional comment.

The database holds the rules too: ``case_id`` is unique (once per case, even under concurrent requests) and
a check constraint keeps the rating in 1..5 and the comment within :data:`MAX_COMMENT_CHARS`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from recovery.models import CaseStatus
from store.cases import Case, CaseNotFound
from store.db import UTCDateTime, begin_write, utcnow

MIN_RATING = 1
MAX_RATING = 5
MAX_COMMENT_CHARS = 2000


class CaseFeedback(SQLModel, table=True):
    __tablename__ = "case_feedback"  # type: ignore[assignment]
    __table_args__ = (
        UniqueConstraint("case_id", name="uq_case_feedback_case"),
        CheckConstraint(f"rating BETWEEN {MIN_RATING} AND {MAX_RATING}", name="ck_case_feedback_rating"),
        CheckConstraint(
            f"comment IS NULL OR length(comment) <= {MAX_COMMENT_CHARS}", name="ck_case_feedback_comment_length"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(max_length=255)
    user_id: str = Field(index=True, max_length=128)
    rating: int
    comment: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FeedbackExists(Exception):
    """The case was rated already (a case takes one rating)."""

    def __init__(self, existing: CaseFeedback) -> None:
        super().__init__(f"case {existing.case_id!r} was rated already, on {existing.created_at:%Y-%m-%d %H:%M} UTC")
        self.existing = existing


class CaseNotClosed(Exception):
    """The case is still being worked on: it can be rated once it ends."""

    def __init__(self, case_id: str, status: CaseStatus) -> None:
        super().__init__(f"case {case_id!r} is {status}, not closed yet")
        self.case_id = case_id
        self.status = status


def closing_statuses() -> list[CaseStatus]:
    """The statuses a case ends in (and can be rated in)."""
    return [s for s in CaseStatus if s.terminal]


def add_feedback(
    session: Session, *, case_id: str, user_id: str, rating: int, comment: str | None = None
) -> CaseFeedback:
    """Record ``user_id``'s rating of their closed case, once.

    Raises :class:`CaseNotFound` when the case does not exist or is another user's (the same error: nobody
    learns of another user's case), :class:`CaseNotClosed` before the case ends, :class:`FeedbackExists` the
    second time, and ``ValueError`` for a rating outside 1..5 or a comment too long. Changes nothing then.
    """
    if isinstance(rating, bool) or not MIN_RATING <= rating <= MAX_RATING:
        raise ValueError(f"rating must be a whole number from {MIN_RATING} to {MAX_RATING}, got {rating!r}")
    if comment is not None and len(comment) > MAX_COMMENT_CHARS:
        raise ValueError(f"comment must be at most {MAX_COMMENT_CHARS} characters, got {len(comment)}")
    begin_write(session)
    case = session.get(Case, case_id)
    if case is None or case.user_id != user_id:
        session.rollback()
        raise CaseNotFound(case_id)
    if not case.status.terminal:
        status = case.status
        session.rollback()
        raise CaseNotClosed(case_id, status)
    existing = _find(session, case_id)
    if existing is not None:
        session.expunge(existing)
        session.rollback()
        raise FeedbackExists(existing)
    feedback = CaseFeedback(case_id=case_id, user_id=user_id, rating=rating, comment=comment)
    session.add(feedback)
    try:
        session.commit()
    except IntegrityError:  # a concurrent request rated the case first
        session.rollback()
        winner = _find(session, case_id)
        session.rollback()
        if winner is None:
            raise
        raise FeedbackExists(winner) from None
    session.refresh(feedback)
    return feedback


def get_feedback(session: Session, *, case_id: str) -> CaseFeedback | None:
    return _find(session, case_id)


def _find(session: Session, case_id: str) -> CaseFeedback | None:
    return session.exec(select(CaseFeedback).where(CaseFeedback.case_id == case_id)).first()
