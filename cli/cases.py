"""``recovery case``: inspect cases."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.common import CliError, load_settings, one_line_errors, open_engine, print_json
from recovery.units import format_units
from store.cases import Case, CaseEvent

app = typer.Typer(help="Inspect cases.", no_args_is_help=True)


def case_record(case: Case, events: list[CaseEvent]) -> dict[str, Any]:
    """A case row and its timeline as JSON-safe data (amounts as integer strings)."""
    dumped = case.model_dump(mode="json")
    data = {name: dumped[name] for name in type(case).model_fields if name in dumped}
    for name in ("amount", "fee", "gas", "credited"):
        value = getattr(case, name)
        data[name] = None if value is None else str(value)
        if value is not None and case.decimals is not None:
            data[f"{name}_decimal"] = format_units(value, case.decimals)
    if case.quote_json:
        data["quote"] = json.loads(data.pop("quote_json"))
    data["timeline"] = [
        {"at": e.at.isoformat(), "key": e.key, "status": str(e.status), "message": e.message} for e in events
    ]
    return data


@app.command("show")
@one_line_errors
def case_show(case_id: Annotated[str, typer.Argument(help="The case id, e.g. case-bsc-0xabc...-7")]) -> None:
    """Print a case and its timeline as JSON, from the database."""
    from store.cases import get_case, timeline

    engine = open_engine(load_settings())
    try:
        with Session(engine) as session:
            case = get_case(session, case_id=case_id)
            if case is None:
                raise CliError(f"no case {case_id!r}")
            print_json(case_record(case, timeline(session, case_id=case_id)))
    finally:
        engine.dispose()
