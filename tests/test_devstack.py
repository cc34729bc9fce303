"""The ``make run`` supervisor, run for real as a subprocess on free ports and a temporary data dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.stack import TEMPORAL_BIN, free_port, port_free
from recovery.settings import ROOT, dev_chains

ANVIL = ROOT / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
STARTUP_TIMEOUT_S = 150.0


def _free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def _stack_env(data_dir: Path) -> tuple[dict[str, str], dict[str, int]]:
    temporal, ui, api, eth, bsc, polygon, receiver = _free_ports(7)
    chains = []
    for chain, port in zip(dev_chains(), (eth, bsc, polygon), strict=True):
        chains.append(chain.model_copy(update={"rpc_urls": [f"http://127.0.0.1:{port}"]}).model_dump(mode="json"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_") and k != "DATABASE_URL"}
    env.update(
        {
            "RECOVERY_CONFIG": str(data_dir / "no-such-recovery.toml"),
            "RECOVERY_DATA_DIR": str(data_dir),
            "RECOVERY_TEMPORAL_ADDRESS": f"127.0.0.1:{temporal}",
            "RECOVERY_UI_PORT": str(ui),
            "RECOVERY_API_PORT": str(api),
            "RECOVERY_API_HOST": "127.0.0.1",
            "RECOVERY_CHAINS": json.dumps(chains),
            "RECOVERY_NOTIFICATIONS__DEV_RECEIVER_PORT": str(receiver),
        }
    )
    ports = {"temporal": temporal, "ui": ui, "api": api, "ethereum": eth, "bsc": bsc, "polygon": polygon}
    ports["webhook-receiver"] = receiver
    return env, ports


def _children_of(pid: int) -> set[int]:
    """All live descendants of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a reparented zombie may linger in containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def needs_binaries() -> None:
    if not TEMPORAL_BIN.exists():
        pytest.skip(f"{TEMPORAL_BIN} missing (make install)")
    if not ANVIL.exists():
        pytest.skip(f"{ANVIL} missing (make install)")
    for module in ("api/main.py", "worker.py"):
        if not (ROOT / module).exists():
            pytest.skip(f"{module} does not exist yet")


@pytest.fixture
def stack_proc(tmp_path: Path, needs_binaries: None) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], Path]]:
    env, ports = _stack_env(tmp_path / "data")
    out = tmp_path / "devstack.out"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", "--startup-timeout", str(STARTUP_TIMEOUT_S - 10)],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, ports, out
    finally:
        if proc.poll() is None:  # the test failed half-way: do not leave a stack behind
            descendants = _children_of(proc.pid)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pid in descendants:
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _wait_until_up(proc: subprocess.Popen[bytes], ports: dict[str, int], out: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    healthy = ui_ok = False
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"devstack exited with {proc.returncode} during startup:\n{out.read_text()}")
            try:
                healthy = healthy or http.get(f"http://127.0.0.1:{ports['api']}/healthz").status_code == 200
                ui_ok = ui_ok or http.get(f"http://127.0.0.1:{ports['ui']}/").status_code < 500
            except httpx.HTTPError:
                pass
            if healthy and ui_ok and "dev stack is up" in out.read_text():
                return
            time.sleep(0.5)
    pytest.fail(f"stack not up after {STARTUP_TIMEOUT_S:.0f} s (healthz {healthy}, UI {ui_ok}):\n{out.read_text()}")


def _a_case_change_reaches_the_webhook_receiver(data_dir: Path) -> None:
    """The worker's dispatcher (started on boot) signs with the dev secret; the stack's receiver verifies it."""
    from sqlmodel import Session

    from store import cases
    from store.db import make_engine

    engine = make_engine(f"sqlite:///{data_dir / 'recovery.db'}")
    try:
        with Session(engine) as session:
            cases.create_case(
                session, case_id="case-devstack-probe", user_id="nobody", chain="bsc", tx_hash="0x01", log_index=0
            )
    finally:
        engine.dispose()
    log = data_dir / "logs" / "webhook-receiver.log"
    deadline = time.monotonic() + 60
    while "case-devstack-probe #1" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, f"no webhook received: {log.read_text() if log.exists() else 'no log'}"
        time.sleep(0.25)
    assert "REJECTED" not in log.read_text()


def test_stack_starts_serves_and_stops_cleanly_on_sigint(
    stack_proc: tuple[subprocess.Popen[bytes], dict[str, int], Path],
) -> None:
    proc, ports, out = stack_proc
    _wait_until_up(proc, ports, out)

    banner = out.read_text()
    assert f"http://localhost:{ports['ui']}" in banner
    assert f"http://127.0.0.1:{ports['api']}/docs" in banner
    assert f"http://127.0.0.1:{ports['bsc']}" in banner
    assert "daily fee reconciliation schedule reconcile-fees: " in banner  # created, or already there
    assert f"http://127.0.0.1:{ports['webhook-receiver']}/webhooks" in banner
    _a_case_change_reaches_the_webhook_receiver(out.parent / "data")

    descendants = _children_of(proc.pid)
    assert len(descendants) >= 5, f"expected temporal, 2 anvils, worker and api, got {descendants}"

    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, out.read_text()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in descendants):
        time.sleep(0.1)
    assert not [p for p in descendants if _alive(p)], "children left running after SIGINT"
    for name, port in ports.items():
        assert port_free(port), f"port {port} ({name}) still in use after the stack stopped"
    assert "Traceback" not in out.read_text()


@pytest.mark.parametrize(
    ("taken", "setting"),
    [("api", "RECOVERY_API_PORT"), ("temporal", "RECOVERY_TEMPORAL_ADDRESS"), ("bsc", "RECOVERY_CHAINS")],
)
def test_taken_port_gives_a_clear_message_and_exit_1(tmp_path: Path, taken: str, setting: str) -> None:
    env, ports = _stack_env(tmp_path / "data")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        result = subprocess.run(
            [sys.executable, "-m", "devstack"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if str(ports[taken]) in line]
    assert len(lines) == 1, result.stderr
    assert setting in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "data" / "temporal.db").exists(), "nothing may start when a port is taken"
