"""Working-day arithmetic for service levels (pure): weekends, holidays, starts outside working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.working_days import SlaTerms, WorkingCalendar, plan_sla

# Christmas 2026 is a Friday; New Year's Day 2027 a Friday
CALENDAR = WorkingCalendar(holidays=[date(2026, 12, 25), date(2027, 1, 1)])


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_counting_skips_weekends_and_holidays() -> None:
    monday = at(date(2026, 12, 21))
    assert CALENDAR.add_working_days(monday, 0) == monday
    assert CALENDAR.add_working_days(monday, 3) == at(date(2026, 12, 24))  # Thursday
    assert CALENDAR.add_working_days(monday, 4) == at(date(2026, 12, 28))  # over Christmas and the weekend
    assert CALENDAR.add_working_days(monday, 8) == at(date(2027, 1, 4))  # over New Year's Day
    assert CALENDAR.working_days_between(monday, at(date(2027, 1, 4))) == 8


def test_a_start_outside_working_days_counts_from_the_next_working_morning() -> None:
    saturday = at(date(2026, 12, 26), hour=15)
    assert CALENDAR.add_working_days(saturday, 0) == datetime(2026, 12, 28, tzinfo=UTC)
    assert CALENDAR.add_working_days(saturday, 1) == datetime(2026, 12, 29, tzinfo=UTC)
    christmas = at(date(2026, 12, 25))
    assert CALENDAR.add_working_days(christmas, 1) == datetime(2026, 12, 29, tzinfo=UTC)


def test_sla_plan_of_15_and_30_working_days() -> None:
    plan = plan_sla(SlaTerms(calendar=CALENDAR), at(date(2026, 12, 21)))
    assert plan.reminders == [at(date(2026, 12, 29)), at(date(2027, 1, 6))]  # 5 and 10 working days
    assert plan.due_soon_at == at(date(2027, 1, 8))  # 12 working days: 3 before the target
    assert plan.target_at == at(date(2027, 1, 13))  # 15 working days: three weeks and two holidays later
    assert plan.deadline_at == at(date(2027, 2, 3))  # 30
    later = plan.shifted(timedelta(days=2))
    assert later.target_at == plan.target_at + timedelta(days=2) and later.started_at == plan.started_at


def test_a_calendar_without_working_days_says_so() -> None:
    with pytest.raises(ValueError, match="no working day"):
        WorkingCalendar(weekend=list(range(7))).add_working_days(at(date(2026, 12, 21)), 1)


@given(
    start=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)),
    first=st.integers(0, 40),
    second=st.integers(0, 40),
)
def test_adding_working_days_composes_and_lands_on_working_days(start: datetime, first: int, second: int) -> None:
    once = CALENDAR.add_working_days(start, first + second)
    assert once == CALENDAR.add_working_days(CALENDAR.add_working_days(start, first), second)
    assert CALENDAR.is_working_day(once.date()) and once >= start
    assert CALENDAR.working_days_between(start, once) == first + second
