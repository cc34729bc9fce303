"""Feedback: once a case has ended, its user rates it (1 to 5, with an optional comment), once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import CurrentUser, SessionDep
from api.routes.cases import _must_be_yours
from api.schemas import ErrorOut
from recovery.i18n import Listed, Message, MessageError
from store import cases
from store.feedback import (
    MAX_COMMENT_CHARS,
    MAX_RATING,
    MIN_RATING,
    CaseFeedback,
    CaseNotClosed,
    FeedbackExists,
    add_feedback,
    closing_statuses,
    get_feedback,
)

router = APIRouter(prefix="/cases", tags=["feedback"])

RATING_HELP = Message("a whole number from {min} (very unhappy) to {max} (very happy)", min=MIN_RATING, max=MAX_RATING)


class FeedbackCreate(BaseModel):
    """Your rating of a closed case."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"rating": 5, "comment": "Quick and clear, thank you."}]},
    )

    rating: int = Field(
        ge=MIN_RATING, le=MAX_RATING, description=f"How happy you are with the handling of your case: {RATING_HELP}"
    )
    comment: str | None = Field(
        default=None,
        max_length=MAX_COMMENT_CHARS,
        description=f"Anything you want to tell us, up to {MAX_COMMENT_CHARS} characters",
    )

    @field_validator("rating", mode="before")
    @classmethod
    def _rating(cls, value: object) -> int:
        if isinstance(value, float) and value.is_integer():  # JSON's 4.0 is the integer 4
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not MIN_RATING <= value <= MAX_RATING:
            raise MessageError(Message("must be {help}, got {value}", help=RATING_HELP, value=repr(value)))
        return value

    @field_validator("comment", mode="before")
    @classmethod
    def _comment(cls, value: object) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise MessageError(Message("must be text (or leave it out)"))
        value = value.strip()
        if len(value) > MAX_COMMENT_CHARS:
            raise MessageError(
                Message(
                    "is {length} characters long; shorten it to at most {max}", length=len(value), max=MAX_COMMENT_CHARS
                )
            )
        return value or None


class FeedbackOut(BaseModel):
    case_id: str
    rating: int = Field(description=RATING_HELP)
    comment: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: CaseFeedback) -> FeedbackOut:
        return cls(case_id=row.case_id, rating=row.rating, comment=row.comment, created_at=row.created_at)


def _closed_names() -> Listed:
    """``COMPLETED, REJECTED or EXPIRED``, worded for the reader's language."""
    return Listed([s.value for s in closing_statuses()], style="or")


@router.post(
    "/{case_id}/feedback",
    status_code=status.HTTP_201_CREATED,
    response_model=FeedbackOut,
    responses={
        401: {"model": ErrorOut, "description": "Missing or invalid API token"},
        404: {"model": ErrorOut, "description": "No such case among yours"},
        409: {"model": ErrorOut, "description": "The case has not ended yet, or you rated it already"},
        422: {"model": ErrorOut, "description": "Rating outside 1..5, comment too long, or an invalid body"},
    },
)
def rate_case(case_id: str, body: FeedbackCreate, session: SessionDep, user: CurrentUser) -> Any:
    """Rate your case once it has ended (completed, rejected, expired...): a rating from 1 to 5 and an
    optional comment. A case takes one rating; before it ends the answer is 409 and says when you can."""
    _must_be_yours(cases.get_case(session, case_id=case_id), user, case_id)
    session.commit()
    try:
        row = add_feedback(session, case_id=case_id, user_id=user.user_id, rating=body.rating, comment=body.comment)
    except cases.CaseNotFound:  # it went away between the two reads
        _must_be_yours(None, user, case_id)
        raise
    except CaseNotClosed as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=Message(
                "your case is {status} and still being worked on; you can rate it once it is {closed} (follow it at "
                "GET /v1/cases/{case_id}); nothing was recorded",
                status=str(exc.status),
                closed=_closed_names(),
                case_id=case_id,
            ),
        ) from None
    except FeedbackExists as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=Message(
                "you rated this case already ({rating} of {max}, on {rated_at}); a case takes one rating, nothing was "
                "changed (see it at GET /v1/cases/{case_id}/feedback)",
                rating=exc.existing.rating,
                max=MAX_RATING,
                rated_at=exc.existing.created_at,
                case_id=case_id,
            ),
        ) from None
    return FeedbackOut.of(row)


@router.get(
    "/{case_id}/feedback",
    response_model=FeedbackOut,
    responses={404: {"model": ErrorOut, "description": "No such case among yours, or you have not rated it"}},
)
def read_feedback(case_id: str, session: SessionDep, user: CurrentUser) -> Any:
    """Your rating of a case, if you gave one."""
    _must_be_yours(cases.get_case(session, case_id=case_id), user, case_id)
    row = get_feedback(session, case_id=case_id)
    if row is None:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=Message(
                "you have not rated this case; rate it with POST /v1/cases/{case_id}/feedback once it has ended",
                case_id=case_id,
            ),
        )
    return FeedbackOut.of(row)
