"""Smoke test of the API benchmark: a tiny database, one short round of each app, every answer a 200, the one
result line (not the ratio targets: a 1-second round on a shared machine says nothing about them)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import pytest

from bench import bench_api
from bench.__main__ import discover
from bench.bench_api import Dataset, Measurement, Round, build_parser, check_answers, generate, main
from bench.terminal import BenchError

NUMBER = r"\d+(?:\.\d+)?"
PART = (
    rf"(\d+) req/s, ratio (\d+\.\d\d)( vs bare FastAPI)?, "
    rf"p99 ({NUMBER}) ms vs ({NUMBER}) ms bare \(ratio (\d+\.\d\d)\)"
)
LINE = re.compile(rf"^bench api: {PART}(; PostgreSQL: {PART})?$")


def test_discovered_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert "api" in discover()
    args = build_parser().parse_args([])
    assert (args.cases, args.users, args.concurrency, args.client) == (100_000, 1_000, 32, "raw")
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--concurrency" in capsys.readouterr().out


def test_generated_cases_spread_over_users_with_timelines() -> None:
    data = Dataset()
    batches = list(generate(500, 20, 1, data))
    rows: Counter[str] = Counter()
    for batch in batches:
        for table, values in batch.items():
            rows[table] += len(values)
    assert rows["users"] == 20 and rows["cases"] == 500 and len(set(data.case_ids)) == 500
    assert 2 * 500 < rows["case_events"] < 8 * 500
    assert rows["case_handling"] and rows["ownership_requirements"] and rows["ledger_refunds"]
    assert len(set(data.owners)) == 20 and len(data.tokens) == 20


def test_a_non_200_answer_fails_the_bench() -> None:
    measured = Measurement("real API", "SQLite", [Round(requests=3, statuses=Counter({200: 2, 429: 1}))])
    with pytest.raises(BenchError, match="429"):
        check_answers(measured)


def test_tiny_run_answers_200_and_prints_the_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Sequence[Measurement]] = []
    final_line = bench_api.final_line

    def recording(measured: Sequence[Measurement]) -> str:
        seen.append(measured)
        return final_line(measured)

    monkeypatch.setattr(bench_api, "final_line", recording)
    monkeypatch.delenv("TEST_POSTGRES_URL", raising=False)  # SQLite only: the PostgreSQL path is the same code
    assert main(["--cases", "200", "--users", "20", "--duration", "1", "--warmup", "0.3"]) == 0

    out = capsys.readouterr().out.strip().splitlines()
    assert LINE.match(out[-1]), out[-1]
    [measured] = seen
    assert [m.app for m in measured] == ["bare FastAPI", "real API"]
    for m in measured:
        assert len(m.rounds) == 2 and m.requests > 0
        assert set(m.statuses) == {200} and m.statuses[200] == m.requests, (m.app, m.statuses)
    assert sum(r.wrong_bodies for r in measured[1].rounds) == 0
