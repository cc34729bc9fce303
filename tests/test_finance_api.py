"""``GET /v1/finance/fees`` (finance and admin only; JSON and CSV the same figures) and ``recovery fees
report`` (table, csv, json, html; bad input exits 2 with what to do). Both databases for the API."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from cli.app import app
from recovery.settings import get_settings
from services.fee_report import csv_rows, fee_report
from store.db import make_engine
from store.schema import init_db
from tests import fee_report_data as data
from tests.test_cli_users import cli_env
from tests.test_staff_api import StaffApi, staff_api

__all__ = ["cli_env", "staff_api"]

URL = "/v1/finance/fees"
PARAMS = {"from": "2026-10-15", "to": "2026-12-01"}


async def test_only_finance_and_admins_read_the_report(staff_api: StaffApi) -> None:
    for who, code in ((None, 401), ("not-a-token", 401), ("user", 403), ("bob", 403), ("fiona", 200), ("root", 200)):
        response = await staff_api.call(who, "GET", URL, params=PARAMS)
        assert response.status_code == code, (who, response.text)
    response = await staff_api.call("bob", "GET", URL, params=PARAMS)
    assert response.json()["detail"] == "bob is engineer; this route is for finance, admin only"
    response = await staff_api.call("user", "GET", URL, params=PARAMS)
    assert "this is a user's API token" in response.json()["detail"]


async def test_bad_parameters_answer_422_saying_what_to_do(staff_api: StaffApi) -> None:
    for params, says in (
        (PARAMS | {"group_by": "chain,year"}, "unknown dimension 'year'; use any of chain, asset, pattern"),
        (PARAMS | {"from": "15.10.2026"}, "from: expected a date as YYYY-MM-DD"),
        (PARAMS | {"to": "2026-10-15"}, "to is exclusive, so one day is from 2026-10-15 to 2026-10-16"),
        (PARAMS | {"format": "xml"}, "format: Input should be 'json' or 'csv'"),
        ({"from": "2026-10-15"}, "to is required"),
    ):
        response = await staff_api.call("fiona", "GET", URL, params=params)
        assert response.status_code == 422, (params, response.text)
        assert says in response.json()["detail"], response.json()


async def test_json_and_csv_carry_the_same_figures(staff_api: StaffApi, db_engine: Engine) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        data.store(session, data.build(cases=24))
        expected = fee_report(session, start=data.START, end=data.END, group_by=("pattern", "month"))
    params = PARAMS | {"group_by": "pattern,month"}
    response = await staff_api.call("fiona", "GET", URL, params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body == json.loads(expected.model_dump_json())
    assert body["group_by"] == ["pattern", "month"] and body["groups"]
    assert all(isinstance(line["fees_charged"], str) for g in body["groups"] for line in g["lines"])

    response = await staff_api.call("fiona", "GET", URL, params=params | {"format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert 'filename="fees_2026-10-15_2026-12-01.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert rows == csv_rows(expected)
    flattened = [
        {"pattern": g["key"]["pattern"] or "", "month": g["key"]["month"]}
        | {k: "" if v is None else str(v) for k, v in line.items()}
        for g in body["groups"]
        for line in g["lines"]
    ]
    assert rows == flattened


# --- the CLI -----------------------------------------------------------------------------------------


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["fees", "report", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_formats_and_bad_input(cli_env: Path, tmp_path: Path) -> None:
    engine = make_engine(get_settings().database_url or "")
    init_db(engine)
    with Session(engine, expire_on_commit=False) as session:
        data.store(session, data.build(cases=16))
    engine.dispose()
    period = ["--from", "2026-10-15", "--to", "2026-12-01"]

    code, out, err = _run(*period, "--group-by", "chain")
    assert code == 0, err
    assert "Fees booked from 2026-10-15 until before 2026-12-01" in out and "total" in out

    code, out, err = _run(*period, "--group-by", "week,asset", "--format", "json")
    assert code == 0, err
    report = json.loads(out)
    assert report["group_by"] == ["week", "asset"] and report["total"]["cases"] > 0

    code, out, err = _run(*period, "--group-by", "week,asset", "--format", "csv", "--out", str(tmp_path / "r.csv"))
    assert code == 0 and out == "" and "wrote" in err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert len(rows) == sum(len(g["lines"]) for g in report["groups"])
    assert rows[0]["week"] == report["groups"][0]["key"]["week"]

    code, out, err = _run(*period, "--format", "html", "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert html.count('class="plotly-graph-div"') == 4 and "http://" not in html.split("<script")[0]

    for args, says in (
        (["--from", "2026-12-01", "--to", "2026-12-01"], "--to (2026-12-01) must come after --from (2026-12-01)"),
        ([*period, "--group-by", "year"], "unknown dimension 'year'"),
        (["--from", "yesterday", "--to", "2026-12-01"], "--from: expected a date as YYYY-MM-DD"),
        ([*period, "--out", "x.txt"], "--out needs --format csv, json or html"),
        ([*period, "--format", "pdf"], "'pdf' is not one of"),
    ):
        code, out, err = _run(*args)
        assert code == 2, (args, code, out, err)
        assert says in err, (args, err)
    code, out, err = _run("--help")
    assert code == 0 and "--group-by" in out and "exclusive" in out
