"""Smoke test of the fee report benchmark: a tiny ledger, both databases when TEST_POSTGRES_URL is set, the one
result line (the bench checks the report's money against the generated rows itself)."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import discover
from bench.bench_fee_report import build_parser, main, make_assets

LINE = re.compile(
    r"^bench fee-report: (\d+) rows, (ratio (\d+\.\d\d) vs the bare SQL aggregate \(PostgreSQL\), ratio (\d+\.\d\d) "
    r"\(SQLite\)|PostgreSQL skipped \(set TEST_POSTGRES_URL\), ratio (\d+\.\d\d) vs the bare SQL aggregate \(SQLite\))$"
)


def test_discovered_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert "fee_report" in discover()
    args = build_parser().parse_args([])
    assert (args.rows, args.chains, args.assets, args.days) == (1_000_000, 10, 50, 400)
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--rows" in capsys.readouterr().out


def test_assets_span_every_chain_with_its_native_coin() -> None:
    assets = make_assets(10, 50)
    assert len({(a.chain, a.symbol) for a in assets}) == 50 and len({a.chain for a in assets}) == 10
    assert {a.decimals for a in assets} == {6, 18}


def test_tiny_run_prints_one_result_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rows", "3000", "--repeat", "1", "--days", "20"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and LINE.match(out[0]), out
    assert out[0].startswith("bench fee-report: 3000 rows, ")
