"""Smoke test of the scanner benchmark: small arguments, its own anvil, the one-line result."""

from __future__ import annotations

import asyncio
import re

import pytest

from bench.__main__ import discover
from bench.bench_scan import build_parser, main, make_addresses

LINE = re.compile(
    r"^bench scan: (\d+) blocks/s with M=(\d+) watched addresses, ratio (\d+\.\d) vs naive per-block scan, "
    r"(\d+) deposits found$"
)


def test_discovered_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert "scan" in discover()
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--addresses" in capsys.readouterr().out
    args = build_parser().parse_args([])
    assert args.addresses == 10_000 and args.blocks == 1000


def test_addresses_are_distinct_and_valid() -> None:
    addresses = make_addresses("watched", 1000)
    assert len(set(addresses)) == 1000
    assert all(re.fullmatch(r"0x[0-9a-f]{40}", a) for a in addresses)


async def test_small_run_prints_one_result_line(capsys: pytest.CaptureFixture[str]) -> None:
    # main() runs its own event loop: give it a thread of its own
    code = await asyncio.to_thread(main, ["--blocks", "40", "--addresses", "600", "--repeat", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    match = LINE.match(out[-1])
    assert match is not None, out
    assert int(match.group(2)) == 600
    assert int(match.group(4)) == 10  # 20 transfers, half of them to watched addresses
    assert int(match.group(1)) > 0
