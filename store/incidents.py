"""Platform-fault incidents: a window in which the exchange itself caused mis-deposits (a congested or halted
deposit chain, a wrong address shown by the app). Every case whose deposit falls in the window has its fee
waived, and is compensated where the incident says so (``services.incidents`` applies them)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import CheckConstraint, Text
from sqlmodel import Field, Session, SQLModel, col, or_, select

from store.db import UTCDateTime, begin_write, utcnow


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"  # type: ignore[assignment]
    __table_args__ = (CheckConstraint("starts_at < ends_at", name="ck_incidents_window"),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=64)
    asset: str | None = Field(default=None, max_length=128)
    """None: every asset on the chain."""
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    reason: str = Field(sa_type=Text)
    compensation_usd: str | None = Field(default=None, max_length=64)
    """Paid to each affected user on top of the waiver (a Decimal as text), or None."""
    declared_by: str = Field(max_length=128)
    declared_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_by: str | None = Field(default=None, max_length=128)

    @property
    def compensation(self) -> Decimal | None:
        return None if self.compensation_usd is None else Decimal(self.compensation_usd)


def declare(
    session: Session,
    *,
    chain: str,
    asset: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    compensation_usd: Decimal | None,
    declared_by: str,
) -> Incident:
    begin_write(session)
    incident = Incident(
        chain=chain,
        asset=asset,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason,
        compensation_usd=None if compensation_usd is None else str(compensation_usd),
        declared_by=declared_by,
    )
    session.add(incident)
    session.commit()
    session.refresh(incident)
    return incident


def close(session: Session, *, incident_id: int, closed_by: str) -> Incident | None:
    """Mark an incident handled; None when there is no such incident. Closing twice keeps the first closing.
    Its waivers stand: a case in its window still settles without a fee."""
    begin_write(session)
    incident = session.get(Incident, incident_id)
    if incident is None:
        session.rollback()
        return None
    if incident.closed_at is None:
        incident.closed_at = utcnow()
        incident.closed_by = closed_by
        session.add(incident)
    session.commit()
    session.refresh(incident)
    return incident


def get(session: Session, *, incident_id: int) -> Incident | None:
    return session.get(Incident, incident_id)


def list_incidents(session: Session, *, include_closed: bool = True) -> list[Incident]:
    statement = select(Incident)
    if not include_closed:
        statement = statement.where(col(Incident.closed_at).is_(None))
    return list(session.exec(statement.order_by(col(Incident.id))).all())


def covering(session: Session, *, chain: str, asset: str | None, at: datetime) -> Incident | None:
    """The first incident whose window holds a deposit on ``chain`` of ``asset`` made at ``at``. Closed ones
    count too: closing an incident ends its handling, not the waiver its users are owed."""
    statement = (
        select(Incident)
        .where(
            Incident.chain == chain,
            col(Incident.starts_at) <= at,
            col(Incident.ends_at) > at,
            or_(col(Incident.asset).is_(None), Incident.asset == asset),
        )
        .order_by(col(Incident.id))
    )
    return session.exec(statement).first()
