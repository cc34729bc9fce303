"""The working-day calendar of service levels, from configuration and the ``holidays`` package.

``holidays`` reads its data files and the clock, which the workflow sandbox forbids: this runs in an
activity, and the workflow gets the dates as data (``recovery.working_days``)."""

from __future__ import annotations

from datetime import date, timedelta

import holidays

from recovery.errors import PermanentError
from recovery.settings import SlaConfig
from recovery.working_days import SlaTerms, WorkingCalendar

YEARS_AHEAD = 2
"""Holidays of the start's year and the next: 30 working days never reach further."""


def working_calendar(config: SlaConfig, *, start: date) -> WorkingCalendar:
    if config.drill_day_seconds is not None:  # a drill: every (short) day is a working day
        return WorkingCalendar(weekend=[], day_length=timedelta(seconds=config.drill_day_seconds))
    dates: set[date] = set(config.extra_holidays)
    if config.holiday_country is not None:
        years = list(range(start.year, start.year + YEARS_AHEAD))
        try:
            public = holidays.country_holidays(config.holiday_country, subdiv=config.holiday_subdivision, years=years)
        except NotImplementedError:
            raise PermanentError(
                f"no public holidays known for sla.holiday_country {config.holiday_country!r} "
                f"(subdivision {config.holiday_subdivision!r}): use an ISO 3166 code such as US, DE or SG"
            ) from None
        dates |= set(public)
    return WorkingCalendar(weekend=sorted(set(config.weekend)), holidays=sorted(dates))


def sla_terms(config: SlaConfig, *, start: date) -> SlaTerms:
    return SlaTerms(
        calendar=working_calendar(config, start=start),
        target_days=config.target_working_days,
        deadline_days=config.deadline_working_days,
        reminder_days=list(config.reminder_working_days),
        due_soon_days=config.due_soon_working_days,
        breach_extension_days=config.breach_extension_working_days,
        info_timeout_days=config.info_timeout_working_days,
        fee_acceptance_days=config.fee_acceptance_working_days,
    )


class SlaCalendar:
    """The SLA terms of cases handled now (the activity behind ``sla_terms``)."""

    def __init__(self, config: SlaConfig) -> None:
        self._config = config

    def terms(self, start: date) -> SlaTerms:
        return sla_terms(self._config, start=start)
