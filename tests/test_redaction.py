"""Configured secrets never leave a process in text: logs, activity failures in Temporal, the dev stack's banner.

The end-to-end test runs a local "node" that echoes what it was sent (the request's path and query with the API
key, and the Basic-auth header) in a JSON-RPC error, as real providers do, and checks the worker's log and the
workflow's history in Temporal (time-skipping server) hold none of it.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from pydantic import BaseModel, Field, SecretStr
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from chains.endpoints import RpcError
from chains.jsonrpc import JsonRpcClient
from chains.signer import HDSigner
from devstack.stack import DevStack
from recovery.errors import PermanentError
from recovery.redaction import (
    REDACTED,
    RedactingFilter,
    Redactor,
    install_excepthook,
    install_log_redaction,
    remove_log_redaction,
    secrets_of,
    url_secrets,
)
from recovery.settings import ChainConfig, NotificationsConfig, Settings, dev_chains
from store.db import make_engine
from workflows.activity_policy import fail_fast_on_permanent
from workflows.failure_redaction import RedactingInterceptor, redact_failure, redact_result

KEY = "0123456789abcdef0123456789abcdef"  # an Infura-style project id in the path
QUERY_KEY = "qk_Zx81-secret-api-key"
USER, PASSWORD = "rpcuser", "p@ss/w0rd!"
MNEMONIC = "test test test test test test test test test test test junk"
DB_PASSWORD = "db-s3cret"
TX = "0x" + "ab" * 32


def basic_auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


SECRETS = [KEY, QUERY_KEY, PASSWORD, quote(PASSWORD, safe=""), basic_auth(USER, PASSWORD), DB_PASSWORD]


def secret_url(host: str = "rpc.example.com", scheme: str = "https") -> str:
    return f"{scheme}://{USER}:{quote(PASSWORD, safe='')}@{host}/v3/{KEY}?apikey={QUERY_KEY}&network=mainnet"


def settings_with_secrets(tmp_path: Path, url: str | None = None) -> Settings:
    chains = dev_chains()
    chains[1] = chains[1].model_copy(update={"rpc_urls": [url or secret_url(), "https://bsc-dataseed1.example.org"]})
    return Settings(
        data_dir=tmp_path,
        database_url=f"postgresql://recovery:{DB_PASSWORD}@db.internal:5432/recovery",
        chains=chains,
        signer_mnemonic=SecretStr(MNEMONIC),
        notifications=NotificationsConfig(
            url="https://notify.example/hooks", secret=SecretStr("whsec_" + base64.b64encode(b"k" * 24).decode())
        ),
    )


def assert_no_secret(text: str, secrets: list[str] = SECRETS) -> None:
    leaked = [s for s in secrets if s in text]
    assert not leaked, f"secrets {leaked} in:\n{text}"


# --- what counts as a secret ----------------------------------------------------------------------


def test_secrets_of_the_settings(tmp_path: Path) -> None:
    settings = settings_with_secrets(tmp_path)
    found = secrets_of(settings)
    assert {KEY, QUERY_KEY, PASSWORD, DB_PASSWORD, MNEMONIC, basic_auth(USER, PASSWORD)} <= found
    assert settings.notifications.secret is not None and settings.notifications.secret.get_secret_value() in found
    # words that are not secrets stay readable
    assert not {"mainnet", "recovery", "postgresql", "rpc.example.com", "bsc-dataseed1", "v3"} & found


def test_url_secrets_of_the_usual_provider_shapes() -> None:
    assert url_secrets("https://mainnet.infura.io/v3/" + KEY) == {KEY}
    assert url_secrets("https://eth-mainnet.g.alchemy.com/v2/AbCdEfGhIjKl-Mn") == {"AbCdEfGhIjKl-Mn"}
    assert url_secrets("https://rpc.ankr.com/eth/" + "f" * 64) == {"f" * 64}
    assert url_secrets("https://name.quiknode.pro/4e1a9c0e7b5d42f8a6c3/") == {"4e1a9c0e7b5d42f8a6c3"}
    assert "s3cr3t-key-1" in url_secrets("https://s3cr3t-key-1@rpc.example.com")  # the key as the user name
    assert url_secrets("https://api.trongrid.io?apikey=abc123") == {"abc123"}
    assert url_secrets("https://bsc-dataseed1.binance.org/?network=mainnet") == set()
    assert url_secrets("http://127.0.0.1:8545") == set()


def test_a_model_with_headers_and_a_webhook_secret(tmp_path: Path) -> None:
    class Provider(BaseModel):
        url: str
        headers: dict[str, str]
        webhook_secret: str
        attestation_public_keys: list[str]

    provider = Provider(
        url="https://node.example",
        headers={"Authorization": "Bearer tok-3f9a8b7c6d", "x-api-key": "hdr-key-771"},
        webhook_secret="whk-9988776655",
        attestation_public_keys=["ab" * 32],
    )
    assert secrets_of(provider) == {"Bearer tok-3f9a8b7c6d", "tok-3f9a8b7c6d", "hdr-key-771", "whk-9988776655"}


def test_the_seed_file_is_a_secret(tmp_path: Path) -> None:
    seed = tmp_path / "signer-seed"
    seed.write_text("  " + MNEMONIC.replace(" ", "   ") + "\n")
    found = secrets_of(Settings(data_dir=tmp_path, seed_file=seed))
    assert MNEMONIC in found


def test_redact_every_encoding_and_keep_the_rest(tmp_path: Path) -> None:
    redactor = Redactor.from_settings(settings_with_secrets(tmp_path))
    text = (
        f"POST {secret_url()} failed: invalid project id {KEY} (apikey={quote(QUERY_KEY)}), "
        f"auth Basic {basic_auth(USER, PASSWORD)}, password {PASSWORD!r} / {quote(PASSWORD, safe='').lower()} / "
        f"{json.dumps({'p': PASSWORD})}, seed {MNEMONIC}, db {DB_PASSWORD}"
    )
    redacted = redactor.redact(text)
    assert_no_secret(redacted, [*SECRETS, MNEMONIC, quote(PASSWORD, safe="").lower()])
    assert "rpc.example.com" in redacted and "network=mainnet" in redacted and REDACTED in redacted
    assert repr(redactor).startswith("Redactor(") and KEY not in repr(redactor)


def test_short_values_are_never_redacted() -> None:
    redactor = Redactor(["ab", "xyz", "long-enough"])
    assert redactor.redact("ab xyz long-enough") == "ab xyz ***"
    assert not Redactor() and Redactor().redact("anything") == "anything"


# --- logs ----------------------------------------------------------------------------------------


def _record(msg: str, *args: Any, exc: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord("test", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_the_log_filter_redacts_message_arguments_and_traceback(tmp_path: Path) -> None:
    redactor = Redactor.from_settings(settings_with_secrets(tmp_path))
    filt = RedactingFilter(redactor)
    try:
        raise RuntimeError(f"node said: bad key {KEY}")
    except RuntimeError as exc:
        error = exc
    record = _record("calling %s with %r: %s", secret_url(), {"auth": basic_auth(USER, PASSWORD)}, error, exc=error)
    assert filt.filter(record)
    out = logging.Formatter("%(message)s").format(record)
    assert_no_secret(out)
    assert "RuntimeError" in out and "Traceback" in out and REDACTED in out

    # uvicorn's access formatter unpacks record.args: their number and kinds stay
    access = _record('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/x?key={QUERY_KEY}", "1.1", 200)
    filt.filter(access)
    assert isinstance(access.args, tuple) and len(access.args) == 5 and access.args[4] == 200
    assert_no_secret(access.getMessage())


def test_installed_on_every_handler_and_on_last_resort(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    named = logging.getLogger("test.redaction.named")
    named.addHandler(handler)
    try:
        install_log_redaction(Redactor([KEY]))
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        assert logging.lastResort is not None and any(
            isinstance(f, RedactingFilter) for f in logging.lastResort.filters
        )
        named.warning("key %s", KEY)
        assert KEY not in stream.getvalue() and "key ***" in stream.getvalue()
    finally:
        remove_log_redaction()
        named.removeHandler(handler)


def test_an_uncaught_exception_is_printed_redacted(tmp_path: Path) -> None:
    script = (
        "from recovery.redaction import Redactor, install_excepthook\n"
        f"install_excepthook(Redactor([{KEY!r}]))\n"
        f"raise RuntimeError('bad key ' + {KEY!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "RuntimeError: bad key ***" in done.stderr, done.stderr
    assert KEY not in done.stderr
    assert install_excepthook is not None


# --- activity failures -----------------------------------------------------------------------------


def test_redact_failure_keeps_type_and_retry_semantics() -> None:
    redactor = Redactor([KEY])
    try:
        try:
            raise ConnectionError(f"GET /v3/{KEY} refused")
        except ConnectionError as inner:
            raise ApplicationError(
                f"rpc failed: {KEY}",
                {"url": f"/v3/{KEY}", "attempt": 2},
                type="RpcError",
                non_retryable=True,
                next_retry_delay=timedelta(seconds=7),
                category=ApplicationErrorCategory.BENIGN,
            ) from inner
    except ApplicationError as exc:
        original = exc
    redacted = redact_failure(original, redactor)
    assert isinstance(redacted, ApplicationError) and redacted is not original
    assert (redacted.message, redacted.type, redacted.non_retryable) == ("rpc failed: ***", "RpcError", True)
    assert redacted.next_retry_delay == timedelta(seconds=7) and redacted.category is ApplicationErrorCategory.BENIGN
    assert list(redacted.details) == [{"url": "/v3/***", "attempt": 2}]
    cause = redacted.__cause__
    assert isinstance(cause, ApplicationError) and cause.type == "ConnectionError" and not cause.non_retryable
    assert cause.message == "GET /v3/*** refused" and cause.__cause__ is None
    assert redacted.__traceback__ is original.__traceback__

    # the implicit context (raise inside except, no "from") is what Temporal encodes as the cause: redacted too
    try:
        try:
            raise KeyError(KEY)
        except KeyError:
            raise ValueError("parse failed")  # noqa: B904 (the implicit __context__ is the point)
    except ValueError as exc:
        implicit = exc
    chained = redact_failure(implicit, redactor)
    assert chained is not implicit and isinstance(chained.__cause__, ApplicationError)
    assert chained.__cause__.type == "KeyError" and KEY not in str(chained.__cause__)


def test_clean_failures_and_cancellations_pass_untouched() -> None:
    redactor = Redactor([KEY])
    clean = ValueError("nothing secret here")
    assert redact_failure(clean, redactor) is clean
    cancelled = CancelledError(f"cancelled {KEY}")
    assert redact_failure(cancelled, redactor) is cancelled


class EchoNode(BaseHTTPRequestHandler):
    """A JSON-RPC "node" whose error repeats the request's path, query and Authorization header."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))) or b"{}")
        message = f"invalid project id in {self.path} (authorization: {self.headers.get('authorization')})"
        reply = {"jsonrpc": "2.0", "id": body.get("id"), "error": {"code": -32001, "message": message}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_node_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoNode)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield secret_url(host=f"127.0.0.1:{server.server_address[1]}", scheme="http")
    finally:
        server.shutdown()
        server.server_close()


class Note(BaseModel):
    text: str


class NodeActivities:
    """Activities that reach the node of a configured chain (the URL never enters the workflow's input)."""

    def __init__(self, chain: ChainConfig) -> None:
        self.chain = chain

    @activity.defn(name="redaction_probe_rpc")
    async def rpc(self) -> Any:
        return await JsonRpcClient.from_config(self.chain).call("eth_getTransactionByHash", [TX])

    @activity.defn(name="redaction_probe_result")
    async def result(self) -> Note:
        """A node's error kept in a result (as a trace's note or a token finding's detail is)."""
        try:
            await self.rpc()
        except RpcError as exc:
            return Note(text=f"internal transfers not read ({exc})")
        return Note(text="read")

    @activity.defn(name="redaction_probe_permanent")
    async def permanent(self) -> None:
        with fail_fast_on_permanent():
            raise PermanentError(f"the node at {self.chain.rpc_urls[0]} refused the key")


@workflow.defn(name="RedactionProbe")
class RedactionProbe:
    @workflow.run
    async def run(self, name: str) -> Any:
        return await workflow.execute_activity(
            name,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=10)),
        )


async def _run_probe(
    client: Client, activities: NodeActivities, name: str, *, redactor: Redactor | None, fails: bool = True
) -> str:
    """Run the probe workflow on a worker (with the redacting interceptor unless ``redactor`` is None); the
    workflow's whole history as JSON."""
    queue = f"redaction-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[RedactionProbe],
        activities=[activities.rpc, activities.result, activities.permanent],
        interceptors=[RedactingInterceptor(redactor)] if redactor is not None else [],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await client.start_workflow(RedactionProbe.run, name, id=f"probe-{queue}", task_queue=queue)
        if fails:
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        else:
            await handle.result()
        history = await handle.fetch_history()
    return _readable(history.to_json())


def _readable(history_json: str) -> str:
    """The history as JSON with every payload's base64 ``data`` decoded (results, inputs, failure details)."""

    def decode(node: Any) -> Any:
        if isinstance(node, dict):
            if isinstance(node.get("data"), str) and "metadata" in node:
                return base64.b64decode(node["data"]).decode(errors="replace")
            return {k: decode(v) for k, v in node.items()}
        if isinstance(node, list):
            return [decode(v) for v in node]
        return node

    return json.dumps(decode(json.loads(history_json)))


def _attempts(history_json: str) -> list[int]:
    events = json.loads(history_json)["events"]
    return [
        int(e["activityTaskStartedEventAttributes"].get("attempt", 1))
        for e in events
        if "activityTaskStartedEventAttributes" in e
    ]


def _failures(history_json: str) -> list[dict[str, Any]]:
    events = json.loads(history_json)["events"]
    return [
        e["activityTaskFailedEventAttributes"]["failure"] for e in events if "activityTaskFailedEventAttributes" in e
    ]


async def test_activity_failures_reach_temporal_without_secrets(
    time_skipping_env: WorkflowEnvironment, echo_node_url: str, tmp_path: Path
) -> None:
    settings = settings_with_secrets(tmp_path, url=echo_node_url)
    chain = settings.chain("bsc").model_copy(update={"rpc_urls": [echo_node_url], "rpc_retries": 0})
    activities = NodeActivities(chain)
    client = time_skipping_env.client
    node_secrets = [KEY, QUERY_KEY, basic_auth(USER, PASSWORD)]

    # Without the interceptor the node's echo lands in Temporal's history: the test can see a leak.
    leaky = await _run_probe(client, activities, "redaction_probe_rpc", redactor=None)
    assert any(s in leaky for s in node_secrets), "the echo node should have put the key in the failure"
    leaky = await _run_probe(client, activities, "redaction_probe_result", redactor=None, fails=False)
    assert any(s in leaky for s in node_secrets), "the echo node should have put the key in the result"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    install_log_redaction(Redactor.from_settings(settings))
    try:
        history = await _run_probe(client, activities, "redaction_probe_rpc", redactor=Redactor.from_settings(settings))
        permanent = await _run_probe(
            client, activities, "redaction_probe_permanent", redactor=Redactor.from_settings(settings)
        )
        result = await _run_probe(
            client, activities, "redaction_probe_result", redactor=Redactor.from_settings(settings), fails=False
        )
    finally:
        remove_log_redaction()
        root.removeHandler(handler)

    assert_no_secret(history, node_secrets)
    [failure] = _failures(history)
    assert failure["applicationFailureInfo"]["type"] == "RpcError" and REDACTED in failure["message"]
    assert not failure["applicationFailureInfo"].get("nonRetryable")
    assert _attempts(history) == [3]  # retried as before: RpcError stays retryable

    assert_no_secret(permanent, [*node_secrets, PASSWORD, quote(PASSWORD, safe="")])
    [failure] = _failures(permanent)
    info = failure["applicationFailureInfo"]
    assert info["type"] == "PermanentError" and info["nonRetryable"] is True
    assert _attempts(permanent) == [1]  # non-retryable kept: 1 attempt of the 3 allowed
    assert failure["cause"]["applicationFailureInfo"]["type"] == "PermanentError"

    assert_no_secret(result, node_secrets)
    # the JSON-RPC client scrubs its endpoint's URL from what a node echoes; the interceptor redacts the rest
    assert "internal transfers not read (RPC error -32001: invalid project id in <redacted>" in result

    log_text = stream.getvalue()
    assert "Completing activity as failed" in log_text and "RpcError" in log_text
    assert_no_secret(log_text, node_secrets)


async def test_the_worker_is_built_with_the_redacting_interceptor(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    from worker import build_worker

    settings = settings_with_secrets(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    try:
        worker = build_worker(time_skipping_env.client, settings, engine=engine, signer=HDSigner(MNEMONIC))
    finally:
        engine.dispose()
    [redacting] = [i for i in worker.config()["interceptors"] if isinstance(i, RedactingInterceptor)]
    assert redacting.redactor.leaks(f"/v3/{KEY}") and redacting.redactor.leaks(MNEMONIC)


# --- the dev stack's banner ------------------------------------------------------------------------


def test_the_banner_shows_no_credentials(tmp_path: Path) -> None:
    banner = DevStack(settings_with_secrets(tmp_path)).banner()
    assert "chain bsc" in banner and "rpc.example.com" in banner and REDACTED in banner
    assert_no_secret(banner, [*SECRETS, MNEMONIC])


def test_cli_errors_are_printed_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer

    from cli import common

    monkeypatch.setattr(common, "get_settings", lambda: settings_with_secrets(tmp_path))

    @common.one_line_errors
    def command() -> None:
        raise RuntimeError(f"node said: invalid project id /v3/{KEY}?apikey={QUERY_KEY}")

    with pytest.raises(typer.Exit):
        command()
    err = capsys.readouterr().err
    assert "error: RuntimeError: node said: invalid project id /v3/***?apikey=***" in err
    assert_no_secret(err)


def test_activity_results_are_redacted_keeping_their_type() -> None:
    class Finding(BaseModel):
        detail: str
        notes: list[str]

    class Hex(BaseModel):
        value: str = Field(pattern=r"^[0-9a-f]+$")

    redactor = Redactor([KEY])
    finding = Finding(detail=f"not read (invalid key /v3/{KEY})", notes=[KEY, "fine"])
    redacted = redact_result(finding, redactor)
    assert isinstance(redacted, Finding) and redacted.detail == "not read (invalid key /v3/***)"
    assert redacted.notes == ["***", "fine"]
    clean = Finding(detail="nothing", notes=[])
    assert redact_result(clean, redactor) is clean
    assert redact_result([f"a {KEY}", {"k": (KEY,)}], redactor) == ["a ***", {"k": ("***",)}]
    with pytest.raises(ApplicationError) as refused:  # fails closed rather than storing the secret
        redact_result(Hex(value=KEY), redactor)
    assert refused.value.type == "SecretInActivityResult" and refused.value.non_retryable
