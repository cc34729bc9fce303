"""Working-day arithmetic for service levels (pure): weekends, holidays, starts outside working days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recovery.settings import SlaConfig
from recovery.working_days import SlaTerms, WorkingCalendar, next_sla_event, plan_sla
from services.calendar import sla_terms

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


# --- the drill clock: every day lasts ``day_length`` and every day is a working day ----------------------

DRILL_STARTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
DRILL_DAYS = st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=2))


def drill(day_length: timedelta) -> WorkingCalendar:
    """A drill calendar whose weekend and holidays would leave no working day at all: the drill ignores them."""
    return WorkingCalendar(weekend=list(range(7)), holidays=[date(2026, 12, 25)], day_length=day_length)


@given(start=DRILL_STARTS, day=DRILL_DAYS, first=st.integers(0, 40), second=st.integers(0, 40))
def test_drill_days_are_fixed_lengths_that_compose(start: datetime, day: timedelta, first: int, second: int) -> None:
    calendar = drill(day)
    once = calendar.add_working_days(start, first + second)
    assert once == start + (first + second) * day
    assert once == calendar.add_working_days(calendar.add_working_days(start, first), second)
    assert calendar.is_working_day(once.date()) and calendar.is_working_day(date(2026, 12, 26))  # a Saturday


@given(start=DRILL_STARTS, day=DRILL_DAYS, days=st.integers(0, 40), rest=st.integers(0, 10**12))
def test_drill_days_between_count_whole_days_only(start: datetime, day: timedelta, days: int, rest: int) -> None:
    calendar = drill(day)
    end = calendar.add_working_days(start, days)
    assert calendar.working_days_between(start, end) == days
    part = timedelta(microseconds=rest) % day
    assert calendar.working_days_between(start, end + part) == days  # a part of a day is no day
    assert calendar.working_days_between(end + day, start) == 0  # backwards: none


@given(
    start=DRILL_STARTS,
    seconds=st.integers(1, 3600),
    target=st.integers(1, 30),
    extra=st.integers(0, 30),
    reminders=st.lists(st.integers(0, 40), max_size=4),
    due_soon=st.integers(0, 5),
)
def test_a_drill_plan_is_the_working_day_plan_in_drill_days(
    start: datetime, seconds: int, target: int, extra: int, reminders: list[int], due_soon: int
) -> None:
    day = timedelta(seconds=seconds)
    terms = SlaTerms(
        calendar=drill(day),
        target_days=target,
        deadline_days=target + extra,
        reminder_days=reminders,
        due_soon_days=due_soon,
    )
    plan = plan_sla(terms, start)
    assert plan.target_at == start + target * day and plan.deadline_at == start + (target + extra) * day
    assert plan.due_soon_at == start + max(target - due_soon, 0) * day
    assert plan.reminders == [start + d * day for d in sorted(reminders) if 0 < d < target]
    fired: list[str] = []
    moments: list[datetime] = []
    while (event := next_sla_event(plan, fired)) is not None:  # every moment fires once, in time order
        fired.append(event.key)
        moments.append(event.at)
    assert moments == sorted(moments) and len(set(fired)) == len(fired) == len(plan.reminders) + 3
    assert fired[-2:] == ["sla-target", "sla-deadline"]


def test_the_drill_is_off_unless_configured() -> None:
    """Terms recorded before the drill existed (no ``day_length``) still load as calendar days, and the
    settings' SLA without ``drill_day_seconds`` gives the same plan as before."""
    recorded = WorkingCalendar.model_validate({"weekend": [5, 6], "holidays": ["2026-12-25", "2027-01-01"]})
    assert recorded == CALENDAR and recorded.day_length is None
    config = SlaConfig(holiday_country=None, extra_holidays=[date(2026, 12, 25), date(2027, 1, 1)])
    assert sla_terms(config, start=date(2026, 12, 21)).calendar == CALENDAR
    monday = at(date(2026, 12, 21))
    assert plan_sla(sla_terms(config, start=monday.date()), monday).target_at == at(date(2027, 1, 13))


def test_a_configured_drill_reaches_the_terms() -> None:
    config = SlaConfig(drill_day_seconds=4, target_working_days=2, deadline_working_days=4, reminder_working_days=[1])
    terms = sla_terms(config, start=date(2026, 12, 26))
    assert terms.calendar.day_length == timedelta(seconds=4)
    monday = at(date(2026, 12, 21))
    plan = plan_sla(terms, monday)
    assert (plan.reminders, plan.target_at, plan.deadline_at) == (
        [monday + timedelta(seconds=4)],
        monday + timedelta(seconds=8),
        monday + timedelta(seconds=16),
    )
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        SlaConfig(drill_day_seconds=0)
    with pytest.raises(ValueError, match="longer than zero"):
        WorkingCalendar(day_length=timedelta(0))
