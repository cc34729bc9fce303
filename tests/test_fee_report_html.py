"""The HTML fee report opens in headless Chromium with no network: every chart renders (a plotly div with its
``svg.main-svg``), nothing is requested over http(s), and the page logs no error."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from recovery.settings import ROOT
from services.fee_report_html import html_report
from tests import fee_report_data as data

CHROMIUM = Path("/usr/bin/chromium")
PAGE_SCRIPT = ROOT / "devstack" / "fee_report_page.mjs"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: apt-get install -y --no-install-recommends chromium (.ci/run does)",
)


def open_in_browser(path: Path, screenshot: Path | None = None) -> dict[str, object]:
    args = ["node", str(PAGE_SCRIPT), str(path), *([str(screenshot)] if screenshot else [])]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


@pytest.mark.parametrize("db_engine", ["sqlite"], indirect=True)
def test_the_report_renders_offline_with_every_chart(db_engine: Engine, tmp_path: Path) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        data.store(session, data.build(cases=30))
        html = html_report(
            session,
            start=data.START,
            end=data.END,
            group_by=("chain", "asset"),
            generated_at=datetime(2026, 12, 1, 8, tzinfo=UTC),
        )
    path = tmp_path / "fees.html"
    path.write_text(html, encoding="utf-8")
    assert html.count("<script") >= 4 and 'src="http' not in html

    seen = open_in_browser(path)
    assert seen["requests"] == [], seen
    assert seen["errors"] == [], seen
    assert seen["charts"] == 4 and seen["rendered"] == 4, seen
    assert seen["tables"] == 2, seen
