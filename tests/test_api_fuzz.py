"""The running API fuzzed by schemathesis against its own OpenAPI spec: no server errors, no answer the spec
does not describe (status codes, headers, bodies), with a valid user token and without one.

Everything is real: the API on a port (uvicorn), a SQLite database with a user and a case, the anvil chains
and a Temporal dev server (no worker: claims that reach it start workflows that wait). So a 503 here is a
real finding too. Examples per operation are bounded (``FUZZ_EXAMPLES``, default 20) to keep the run near a
minute; a 500 found here becomes a regression test in tests/test_api_regressions.py.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from devstack.stack import free_port
from recovery.settings import ChainConfig, RateLimitConfig, Settings
from store import cases, db, schema
from store.users import create_user
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
GENEROUS = RateLimitConfig(
    claims="100000/minute",
    writes="100000/minute",
    reads="100000/minute",
    staff="100000/minute",
    anonymous="100000/minute",
)


class RunningApi:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token


@pytest.fixture(scope="module")
def running_api(
    tmp_path_factory: pytest.TempPathFactory, dev_chains: list[ChainConfig], dev_server_env: WorkflowEnvironment
) -> Iterator[RunningApi]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{data / 'api.db'}"
    engine = db.make_engine(url)
    schema.init_db(engine)
    with Session(engine) as session:
        _user, token = create_user(session, user_id="fuzzer", signer=MnemonicSigner(), path_for=deposit_path_for_tests)
        cases.create_case(
            session, case_id="case-fuzz", user_id="fuzzer", chain="bsc", tx_hash="0x" + "ab" * 32, log_index=0
        )
    settings_ = Settings(
        data_dir=data,
        database_url=url,
        chains=dev_chains,
        temporal_address=dev_server_env.client.service_client.config.target_host,
        task_queue=f"fuzz-{uuid.uuid4().hex[:8]}",
        rate_limits=GENEROUS,
    )
    app = create_app(settings_, engine=engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    yield RunningApi(f"http://127.0.0.1:{port}", token)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()


REJECTIONS = [400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 428, 429]
"""What a request the spec does not allow may answer: schemathesis's list and 413, the answer to a body over
``max_body_bytes`` (a too-long field often is)."""

fuzzed = schemathesis.openapi.from_dict(
    create_app(Settings(rate_limits=GENEROUS)).openapi(),
    config=SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": {"expected-statuses": REJECTIONS}}}),
)
"""The spec the running app serves (the same code; made here, at import, because schemathesis's
``pytest.from_fixture`` reads a pytest attribute that pytest 9 no longer has). Creating the app opens nothing."""

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@fuzzed.parametrize()
@FUZZ_SETTINGS
def test_with_a_valid_user_token(case: Any, running_api: RunningApi) -> None:
    if case.path == "/v1/cases" and case.method == "GET" and case.query:
        # a cursor is opaque, only ever one the API gave (an invented one is a 422, tests/test_api_validation.py)
        cursor = case.query.get("cursor")
        if isinstance(cursor, str) and len(cursor) <= 200:  # too long stays: the negative case the spec rejects
            del case.query["cursor"]
    case.call_and_validate(base_url=running_api.url, headers={"Authorization": f"Bearer {running_api.token}"})


@fuzzed.parametrize()
@FUZZ_SETTINGS
def test_without_a_token(case: Any, running_api: RunningApi) -> None:
    case.call_and_validate(base_url=running_api.url)
