"""Smoke test of the claim-answer benchmark: a tiny run on its own stack prints the final line."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import discover
from bench.bench_claim import Results, build_parser, main

LINE = re.compile(
    r"^bench claim: p99 (\d+\.\d\d) s, ratio (\d+\.\d\d) vs direct lookups \(p50 (\d+\.\d\d) s, ratio (\d+\.\d\d)\)$",
    re.M,
)


def test_parser_defaults_and_discovery() -> None:
    args = build_parser().parse_args([])
    assert args.claims == 100 and args.rounds == 2 and not args.keep_data
    assert "claim" in discover()


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--claims" in out and "floor" in out


def test_final_line_and_ratios() -> None:
    results = Results(claims=4, rounds=1, claim_seconds=[0.2, 0.3, 0.3, 0.4], floor_seconds=[0.1, 0.2, 0.2, 0.2])
    assert results.final_line() == "bench claim: p99 0.40 s, ratio 2.00 vs direct lookups (p50 0.30 s, ratio 1.50)"
    assert LINE.match(results.final_line())


def test_tiny_run_prints_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    # main() runs its own event loop: a sync test keeps it off pytest-asyncio's loop.
    assert main(["--claims", "3", "--rounds", "2"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert any(re.search(r"samples\s*│\s*6 \(2 rounds\)\s*│\s*9 \(3 rounds\)", line) for line in out), out
    match = LINE.match(out[-1])
    assert match is not None, out[-1]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
