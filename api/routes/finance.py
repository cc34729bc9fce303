"""The finance API: the fee report (``services.fee_report``) for staff tokens of role finance or admin; the same
figures as ``recovery fees report``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from api.deps import SessionDep
from api.routes.staff import AUTH_ERRORS
from api.schemas import ErrorOut
from api.staff_auth import FinanceStaff
from services.fee_report import (
    DIMENSIONS,
    FeeReport,
    ReportError,
    fee_report,
    parse_day,
    parse_group_by,
    period,
    to_csv,
)

router = APIRouter(prefix="/finance", tags=["finance"])


class ReportFormat(StrEnum):
    JSON = "json"
    CSV = "csv"


@router.get(
    "/fees",
    response_model=FeeReport,
    responses={
        **AUTH_ERRORS,
        422: {"model": ErrorOut, "description": "A bad date, an empty period or an unknown dimension"},
        200: {
            "description": "The report: JSON (exact base units as strings of digits, USD as decimal strings), "
            "or CSV with format=csv (one row per group and asset)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
)
async def fees(
    member: FinanceStaff,
    session: SessionDep,
    from_: Annotated[str, Query(alias="from", description="First day, inclusive (YYYY-MM-DD, UTC)")],
    to: Annotated[str, Query(description="Day after the last, exclusive (YYYY-MM-DD, UTC)")],
    group_by: Annotated[
        str,
        Query(description=f"Comma-separated, any of: {', '.join(DIMENSIONS)} (empty: the whole period in one group)"),
    ] = "",
    format_: Annotated[ReportFormat, Query(alias="format", description="json (default) or csv")] = ReportFormat.JSON,
) -> Any:
    """The fee report of `[from, to)` grouped by `group_by`: per group and per asset, settled cases, recovered,
    fees charged, waived and refunded, compensation, gas charged and gas spent (in the native coin), quoted but
    not charged, the automatic and manual share, time to resolution and reconciliation status (docs/finance.md)."""
    try:
        start, end = period(parse_day(from_, "from"), parse_day(to, "to"))
        dimensions = parse_group_by(group_by)
    except ReportError as exc:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    report = await run_in_threadpool(fee_report, session, start=start, end=end, group_by=dimensions)
    if format_ is ReportFormat.CSV:
        filename = f"fees_{start:%Y-%m-%d}_{end:%Y-%m-%d}.csv"
        return PlainTextResponse(
            to_csv(report),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return report
