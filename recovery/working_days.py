"""Working days: the calendar a manual case's service levels are counted in, and the plan of its SLA.

Pure and workflow-safe. The holiday dates come in as data: the ``holidays`` package reads files and the
clock, so an activity computes them (``services.calendar``) and the workflow only does the arithmetic here.
Times are UTC; a day is a UTC calendar day, except on a drill clock (``WorkingCalendar.day_length``),
where every day lasts that long and every day is a working day, so a demo or a restart drill on a real
Temporal server (which cannot skip time) sees a whole SLA pass in seconds.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Literal

from pydantic import BaseModel, Field, field_validator

MAX_SPAN_DAYS = 3660
"""No plan looks further than ten years ahead (a calendar with no working day at all)."""


class WorkingCalendar(BaseModel):
    weekend: list[int] = Field(default_factory=lambda: [5, 6])
    """Weekdays that are not working days (Monday is 0)."""
    holidays: list[date] = Field(default_factory=list)
    day_length: timedelta | None = None
    """A drill or demo clock: every day lasts this long and every day is a working day (weekend and
    holidays are ignored). None, the default and the only value for production: calendar days."""

    @field_validator("day_length")
    @classmethod
    def _positive_day(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("a drill day must last longer than zero")
        return value

    def is_working_day(self, day: date) -> bool:
        if self.day_length is not None:
            return True
        return day.weekday() not in self.weekend and day not in self.holidays

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The moment ``days`` working days after ``start``: the same time of day on the ``days``-th working
        day after its day. A start outside working days counts from the next working day's midnight.
        On a drill clock: ``start`` plus ``days`` drill days."""
        if days < 0:
            raise ValueError("count working days forward only")
        if self.day_length is not None:
            return start + days * self.day_length
        moment, day = start, start.date()
        if not self.is_working_day(day):
            day = self._next_working(day)
            moment = datetime.combine(day, time(), tzinfo=start.tzinfo)
        for _ in range(days):
            day = self._next_working(day)
        return datetime.combine(day, moment.timetz())

    def working_days_between(self, start: datetime, end: datetime) -> int:
        """Whole working days from ``start`` to ``end`` (how many ``add_working_days`` steps fit)."""
        if self.day_length is not None:
            return max((end - start) // self.day_length, 0)
        count, moment = 0, self.add_working_days(start, 0)
        while count <= MAX_SPAN_DAYS:
            moment = self.add_working_days(moment, 1)
            if moment > end:
                return count
            count += 1
        return count

    def _next_working(self, day: date) -> date:
        for _ in range(MAX_SPAN_DAYS):
            day += timedelta(days=1)
            if self.is_working_day(day):
                return day
        raise ValueError("the calendar has no working day in ten years: check weekend and holidays")


class SlaTerms(BaseModel):
    """The service levels of a manual case, in working days from the moment it first waits for an engineer."""

    calendar: WorkingCalendar = Field(default_factory=WorkingCalendar)
    target_days: int = 15
    deadline_days: int = 30
    reminder_days: list[int] = Field(default_factory=lambda: [5, 10])
    due_soon_days: int = 3
    """The SLA state turns ``due_soon`` this many working days before the target."""
    breach_extension_days: int = 5
    """What the user is told to expect after a breach: an answer within this many more working days."""
    info_timeout_days: int = 10
    """A request for information unanswered this many working days expires the case."""
    fee_acceptance_days: int = 5
    """A quote the user must accept, unanswered this many working days, expires the case."""


class SlaPlan(BaseModel):
    started_at: datetime
    reminders: list[datetime]
    due_soon_at: datetime
    target_at: datetime
    deadline_at: datetime

    def shifted(self, by: timedelta) -> SlaPlan:
        """The plan after a pause of ``by`` (waiting for the user); moments already passed have fired."""
        return SlaPlan(
            started_at=self.started_at,
            reminders=[r + by for r in self.reminders],
            due_soon_at=self.due_soon_at + by,
            target_at=self.target_at + by,
            deadline_at=self.deadline_at + by,
        )


def plan_sla(terms: SlaTerms, started_at: datetime) -> SlaPlan:
    add = terms.calendar.add_working_days
    return SlaPlan(
        started_at=started_at,
        reminders=[add(started_at, d) for d in sorted(terms.reminder_days) if 0 < d < terms.target_days],
        due_soon_at=add(started_at, max(terms.target_days - terms.due_soon_days, 0)),
        target_at=add(started_at, terms.target_days),
        deadline_at=add(started_at, terms.deadline_days),
    )


SlaEventKind = Literal["reminder", "due_soon", "target", "deadline"]


class SlaEvent(BaseModel):
    kind: SlaEventKind
    at: datetime
    number: int = 0
    """Reminders count from 1."""

    @property
    def key(self) -> str:
        return f"sla-{self.kind}-{self.number}" if self.kind == "reminder" else f"sla-{self.kind}"


def sla_events(plan: SlaPlan) -> list[SlaEvent]:
    """Every moment of the plan, in time order (a reminder before a due-soon at the same moment)."""
    events = [SlaEvent(kind="reminder", at=at, number=i) for i, at in enumerate(plan.reminders, start=1)]
    events += [
        SlaEvent(kind="due_soon", at=plan.due_soon_at),
        SlaEvent(kind="target", at=plan.target_at),
        SlaEvent(kind="deadline", at=plan.deadline_at),
    ]
    order = {"reminder": 0, "due_soon": 1, "target": 2, "deadline": 3}
    return sorted(events, key=lambda e: (e.at, order[e.kind]))


def next_sla_event(plan: SlaPlan, fired: list[str]) -> SlaEvent | None:
    return next((e for e in sla_events(plan) if e.key not in fired), None)
