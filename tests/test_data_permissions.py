"""Databases, logs and chain state under the data dir are readable by their owner only (0600, directories
0700), like the signer seed: they were created 0644 (world-readable) with the usual umask 022."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from devstack.devnet import ANVIL_BIN, Anvil
from devstack.stack import TEMPORAL_BIN, free_port, secure_data_dir, spawn, start_temporal_dev_server, stop_process
from store.db import make_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """Run each test under the umask most shells have (022), which made everything world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_sqlite_database_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'recovery.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (a INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as conn:
            files = sorted((tmp_path / "data").iterdir())
            assert [f.name for f in files] == ["recovery.db", "recovery.db-shm", "recovery.db-wal"]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


def test_an_older_world_readable_database_is_tightened_on_connect(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert mode(path) == 0o600
    finally:
        engine.dispose()


def test_secure_data_dir_takes_group_and_other_bits_off(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "logs").mkdir(parents=True)
    for name in ("temporal.db", "temporal.db-wal", "logs/worker.log", "anvil-bsc.json"):
        (data / name).write_text("x")
        os.chmod(data / name, 0o644)
    os.chmod(data / "logs", 0o755)
    os.chmod(data, 0o755)
    secure_data_dir(data)
    assert mode(data) == 0o700 and mode(data / "logs") == 0o700
    assert {mode(p) for p in data.rglob("*") if p.is_file()} == {0o600}


async def test_spawned_children_write_private_logs_and_files(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    made = tmp_path / "made-by-child.db"
    script = f"open({str(made)!r}, 'w').write('x'); print('hello')"
    service = await spawn("child", [sys.executable, "-c", script], log_dir=logs, cwd=tmp_path)
    assert service.proc is not None
    assert await asyncio.wait_for(service.proc.wait(), 30) == 0
    assert "hello" in (logs / "child.log").read_text()
    assert mode(logs / "child.log") == 0o600 and mode(logs) == 0o700
    assert mode(made) == 0o600  # the child inherited the private umask


async def test_an_existing_world_readable_log_is_tightened(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "api.log").write_text("old run\n")
    os.chmod(logs / "api.log", 0o644)
    service = await spawn("api", [sys.executable, "-c", "pass"], log_dir=logs)
    assert service.proc is not None
    await asyncio.wait_for(service.proc.wait(), 30)
    assert mode(logs / "api.log") == 0o600 and "old run" in (logs / "api.log").read_text()


@pytest.mark.skipif(not TEMPORAL_BIN.exists(), reason=f"{TEMPORAL_BIN} missing (make install)")
async def test_the_temporal_dev_server_database_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    service = await start_temporal_dev_server(data, free_port(), free_port())
    assert service.proc is not None
    try:
        for _ in range(300):
            if (data / "temporal.db").exists() and (data / "temporal.db-wal").exists():
                break
            await asyncio.sleep(0.1)
        files = [data / "temporal.db", data / "temporal.db-wal", data / "logs" / "temporal.log"]
        assert {f.name: mode(f) for f in files if f.exists()} == {f.name: 0o600 for f in files}
    finally:
        await stop_process(service.proc, name="temporal")


@pytest.mark.skipif(not ANVIL_BIN.exists(), reason=f"{ANVIL_BIN} missing (make install)")
async def test_the_anvil_state_file_is_private(tmp_path: Path) -> None:
    state = tmp_path / "anvil-bsc.json"
    anvil = await Anvil.start(chain_id=56, port=free_port(), state_file=state)
    await anvil.stop()
    assert state.exists() and mode(state) == 0o600
