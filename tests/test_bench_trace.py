"""Smoke test of the tracing benchmark: a tiny run on its own anvil prints the final line."""

from __future__ import annotations

import re

import pytest

from bench.__main__ import discover
from bench.bench_trace import build_parser, main

LINE = re.compile(
    r"^bench trace: (\d+) tx/s vs (\d+) tx/s naive web3\.py, ratio (\d+\.\d) vs naive web3\.py, N=(\d+)$", re.M
)


def test_parser_defaults_and_discovery() -> None:
    args = build_parser().parse_args([])
    assert (args.txs, args.batch, args.concurrency, args.block_txs) == (1000, 500, 4, 150)
    assert "trace" in discover()


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--txs" in capsys.readouterr().out


def test_tiny_run_prints_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    # main() runs its own event loop: a sync test keeps it off pytest-asyncio's loop.
    assert main(["--txs", "20", "--block-txs", "7"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    match = LINE.match(out[-1])
    assert match is not None, out[-1]
    assert int(match.group(4)) == 20 and int(match.group(1)) > 0 and int(match.group(2)) > 0
