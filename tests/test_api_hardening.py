"""The status API as probed from outside: bounded numbers, one documented error shape, safe headers, no
host-header redirect, docs that work offline, and answers that conform to the OpenAPI spec (schemathesis).

The ``api`` fixture (tests/api_fixtures.py) fakes the tracer, the Temporal connector and the case starter.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.service import RPCError, RPCStatusCode

from api.deps import get_case_starter, get_tracer
from api.main import create_app
from api.security import API_CSP, DOCS_CSP
from recovery.settings import ROOT, Settings, dev_chains
from store import db, schema, users
from store.staff import StaffRole, create_staff
from tests.api_fixtures import MAX_BODY, TX, Api, Fakes
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests

ERROR_SCHEMAS = {"ErrorOut", "ConflictOut"}
CHROMIUM = Path("/usr/bin/chromium")
DOCS_SCRIPT = ROOT / "tests" / "docs_page.mjs"
FUZZ_EXAMPLES = 25


def _spec() -> dict[str, Any]:
    return create_app(Settings(chains=dev_chains()), engine=db.make_engine("sqlite://")).openapi()


def _resolve(spec: dict[str, Any], schema_: Any) -> Any:
    while isinstance(schema_, dict) and "$ref" in schema_:
        schema_ = spec["components"]["schemas"][schema_["$ref"].rsplit("/", 1)[-1]]
    return schema_


def _unbounded_numbers(spec: dict[str, Any], schema_: Any, where: str, seen: frozenset[str] = frozenset()) -> list[str]:
    """Every integer or number in ``schema_`` (followed through $ref, anyOf, properties, items) without a
    maximum."""
    if isinstance(schema_, dict) and "$ref" in schema_:
        if schema_["$ref"] in seen:
            return []
        seen = seen | {schema_["$ref"]}
    schema_ = _resolve(spec, schema_)
    if not isinstance(schema_, dict):
        return []
    found: list[str] = []
    kinds = schema_.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if {"integer", "number"} & set(kinds) and "maximum" not in schema_ and "exclusiveMaximum" not in schema_:
        found.append(where)
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema_.get(key, []):
            found += _unbounded_numbers(spec, sub, where, seen)
    for name, sub in schema_.get("properties", {}).items():
        found += _unbounded_numbers(spec, sub, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema_.get(key), dict):
            found += _unbounded_numbers(spec, schema_[key], f"{where}[]", seen)
    return found


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield f"{method.upper()} {path}", op


# --- 1. every number the API takes is bounded -------------------------------------------------------


def test_every_number_the_api_takes_has_a_maximum() -> None:
    """An unbounded integer parameter answered 500 (``offset=9223372036854775808``: OverflowError in SQLite)."""
    spec = _spec()
    unbounded: list[str] = []
    for name, op in _operations(spec):
        for param in op.get("parameters", []):
            unbounded += _unbounded_numbers(spec, param.get("schema", {}), f"{name} {param['in']} {param['name']}")
        for media in op.get("requestBody", {}).get("content", {}).values():
            unbounded += _unbounded_numbers(spec, media.get("schema", {}), f"{name} body")
    assert not unbounded, "numbers without a maximum (add le=...):\n" + "\n".join(unbounded)


@pytest.mark.parametrize("query", ["limit=9223372036854775808", "limit=-9223372036854775809", "limit=1e400"])
async def test_huge_numbers_are_a_422_not_a_500(api: Api, query: str) -> None:
    response = await api.http.get(f"/v1/cases?{query}", headers=api.auth())
    assert response.status_code == 422, response.text
    assert "limit" in response.json()["detail"]


async def test_a_huge_day_count_is_a_422(api: Api) -> None:
    with Session(api.engine) as session:
        token = create_staff(session, name="ed", role=StaffRole.ENGINEER)[1]
    response = await api.http.get(
        "/v1/staff/cases?due_within_days=9223372036854775807", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422, response.text
    assert "due_within_days" in response.json()["detail"]
    assert api.fakes.connects == 0


# --- 2. one documented error shape ----------------------------------------------------------------


def test_every_error_is_documented_as_one_shape() -> None:
    spec = _spec()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    assert spec["components"]["schemas"]["ErrorOut"]["properties"]["detail"]["type"] == "string"
    problems: list[str] = []
    for name, op in _operations(spec):
        responses: dict[str, Any] = op["responses"]
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400:
                ref = response.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                if ref.rsplit("/", 1)[-1] not in ERROR_SCHEMAS:
                    problems.append(f"{name} {code}: {response}")
        needed = set()
        if op.get("security"):
            needed.add("401")
        if op.get("parameters") or "requestBody" in op:
            needed.add("422")
        if "requestBody" in op:
            needed |= {"400", "413"}
        if any(p["in"] == "path" for p in op.get("parameters", [])):
            needed.add("404")
        if name.split()[1].startswith("/v1/"):
            needed.add("429")
        if needed - set(responses):
            problems.append(f"{name}: {sorted(needed - set(responses))} undocumented")
    assert not problems, "\n".join(problems)
    every_user_route = [op for name, op in _operations(spec) if name.split()[1].startswith("/v1/")]
    assert every_user_route and all(op.get("security") for op in every_user_route)


def assert_error(response: httpx.Response, code: int, *needles: str) -> str:
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    for needle in needles:
        assert needle.lower() in body["detail"].lower(), body["detail"]
    assert "There was an error parsing the body" not in body["detail"]
    return str(body["detail"])


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        (b'{"tx_hash": "\xff\xfe\xfa"}', ("UTF-8", "tx_hash")),  # not UTF-8: FastAPI answered 400 "error parsing"
        (b"\xc3\x28", ("UTF-8",)),
        (b"[" * 1500 + b"]" * 1500, ("nested too deeply",)),  # RecursionError in the JSON parser
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, ("nested too deeply",)),
    ],
)
async def test_undecodable_bodies_answer_our_shape_saying_what_to_send(
    api: Api, content: bytes, needles: tuple[str, ...]
) -> None:
    """FastAPI answered both with an undocumented 400 "There was an error parsing the body"."""
    app = create_app(api.app.state.settings.model_copy(update={"max_body_bytes": 16_384}), engine=api.engine)
    app.dependency_overrides = api.app.dependency_overrides
    # Some dependency raises the interpreter's recursion limit to 100,000 at import; the JSON parser's depth is
    # bounded by it, so a test of a too-deep body lowers it back to Python's default for the request.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000 + len(inspect.stack()))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            response = await http.post(
                "/v1/cases", content=content, headers={**api.auth(), "Content-Type": "application/json"}
            )
    finally:
        sys.setrecursionlimit(limit)
    assert_error(response, 422, *needles)
    assert api.fakes.untouched and api.case_rows() == []


async def test_a_401_is_our_shape(api: Api) -> None:
    assert_error(await api.http.get("/v1/cases"), 401, "Authorization: Bearer")


async def test_unknown_route_and_method_say_what_to_do(api: Api) -> None:
    assert_error(await api.http.get("/v1/nope"), 404, "no route GET /v1/nope", "/docs")
    response = await api.http.delete("/v1/cases", headers=api.auth())
    detail = assert_error(response, 405, "DELETE is not allowed on /v1/cases")
    assert "GET" in detail and "POST" in detail and response.headers["allow"]


# --- 3. headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/cases/", "/v1/cases/case-x/", "/healthz/"])
async def test_no_redirect_copies_the_host_header(api: Api, path: str) -> None:
    """Starlette's trailing-slash redirect answered ``Location: http://<Host header>/v1/cases``."""
    response = await api.http.get(path, headers={**api.auth(), "Host": "evil.example"})
    assert "location" not in response.headers
    assert "evil.example" not in response.text
    assert_error(response, 404, "remove the trailing slash", path.rstrip("/"))


def _assert_security_headers(response: httpx.Response, *, no_store: bool) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    if no_store:
        assert response.headers["cache-control"] == "no-store"


async def test_security_headers_on_every_kind_of_answer(api: Api) -> None:
    answers = {
        "200 case list": await api.http.get("/v1/cases", headers=api.auth()),
        "401": await api.http.get("/v1/cases"),
        "404 case": await api.http.get("/v1/cases/case-nope", headers=api.auth()),
        "422": await api.http.get("/v1/cases?limit=0", headers=api.auth()),
        "413 from the body-size middleware": await api.http.post(
            "/v1/cases", content=b"x" * (MAX_BODY + 1), headers={**api.auth(), "Content-Type": "application/json"}
        ),
    }
    assert answers["413 from the body-size middleware"].status_code == 413
    for what, response in answers.items():
        assert response.status_code < 500, what
        _assert_security_headers(response, no_store=True)
        assert response.headers["content-security-policy"] == API_CSP, what
    health = await api.http.get("/healthz")
    _assert_security_headers(health, no_store=False)
    docs = await api.http.get("/docs")
    _assert_security_headers(docs, no_store=False)
    assert docs.headers["content-security-policy"] == DOCS_CSP


async def test_a_500_carries_the_headers_and_no_detail_of_the_error(api: Api) -> None:
    def broken() -> Any:
        raise RuntimeError("boom: secret=hunter2")

    api.app.dependency_overrides[get_tracer] = broken
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 500
    assert "incident" in response.json()["detail"] and "hunter2" not in response.text
    _assert_security_headers(response, no_store=True)


# --- 4. docs that work offline --------------------------------------------------------------------


@pytest.mark.parametrize(("page", "kinds"), [("/docs", {"js", "css", "png"}), ("/redoc", {"js", "png"})])
async def test_docs_reference_only_local_assets_that_are_served(api: Api, page: str, kinds: set[str]) -> None:
    html = (await api.http.get(page)).text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert urls and all(u.startswith("/") and not u.startswith("//") for u in urls), urls
    assert "http://" not in html and "https://" not in html and "cdn" not in html.lower()
    served: set[str] = set()
    for url in urls:
        response = await api.http.get(url)
        assert response.status_code == 200, url
        kind = url.rsplit(".", 1)[-1]
        expected = {"js": "javascript", "css": "text/css", "png": "image/png"}[kind]
        assert expected in response.headers["content-type"], (url, response.headers["content-type"])
        assert len(response.content) > (100_000 if kind == "js" else 100)
        served.add(kind)
    assert served == kinds
    assert (await api.http.get("/openapi.json")).status_code == 200


def test_the_docs_package_is_pinned() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'"fastapi-offline==[0-9.]+"', pyproject), "pin fastapi-offline in pyproject.toml"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served_api(sqlite_engine: Engine, tmp_path: Path) -> Iterator[str]:
    """The API on a real port (uvicorn in a thread), for a browser."""
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'api.db'}", chains=dev_chains())
    app = create_app(settings, engine=sqlite_engine)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.skipif(
    not CHROMIUM.exists() or shutil.which("node") is None or not (ROOT / "node_modules" / "playwright-core").exists(),
    reason="needs /usr/bin/chromium (apt-get install chromium), node and npm playwright-core (make install)",
)
def test_docs_render_in_a_browser_with_no_network(served_api: str) -> None:
    done = subprocess.run(
        ["node", str(DOCS_SCRIPT), served_api], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    for page in ("swagger", "redoc"):
        assert seen[page]["requests"] == [], seen
        assert seen[page]["errors"] == [], seen
        assert seen[page]["operations"] >= 10, seen


# --- 5. answers conform to the spec (schemathesis smoke run; the full fuzz run is CI's) ---------


class _NoWorkflows:
    """A Temporal client that knows no workflow (every staff read or action finds nothing)."""

    async def list_workflows(self, query: str, *, limit: int | None = None) -> AsyncIterator[Any]:
        for _ in ():
            yield _

    def get_workflow_handle(self, workflow_id: str) -> _NoWorkflows:
        return self

    async def _missing(self, *args: Any, **kwargs: Any) -> Any:
        raise RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    describe = query = execute_update = _missing


class _Fuzz:
    def __init__(self, app: FastAPI, tokens: dict[str, str]) -> None:
        self.app = app
        self.tokens = tokens

    def headers_for(self, path: str) -> dict[str, str]:
        if path.startswith("/v1/finance") or path.startswith("/v1/staff/fees"):
            who = "finance"
        elif path.startswith("/v1/staff"):
            who = "engineer"
        else:
            who = "alice"
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Fuzz]:
    tmp = tmp_path_factory.mktemp("fuzz")
    engine = db.make_engine(f"sqlite:///{tmp / 'api.db'}")
    schema.init_db(engine)
    settings = Settings(data_dir=tmp, database_url=f"sqlite:///{tmp / 'api.db'}", chains=dev_chains())
    fakes = Fakes()

    async def no_workflows() -> Any:
        return _NoWorkflows()

    app = create_app(settings, temporal_client=no_workflows, engine=engine)
    app.dependency_overrides[get_tracer] = lambda: fakes
    app.dependency_overrides[get_case_starter] = lambda: fakes.start
    with Session(engine) as session:
        _, user_token = users.create_user(
            session, user_id="alice", signer=MnemonicSigner(), path_for=deposit_path_for_tests
        )
        tokens = {"alice": user_token}
        tokens["engineer"] = create_staff(session, name="alice", role=StaffRole.ADMIN)[1]
        tokens["finance"] = create_staff(session, name="fin", role=StaffRole.FINANCE)[1]
    yield _Fuzz(app, tokens)
    engine.dispose()


CONFORMANCE = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.response_headers_conformance,
]
OPERATIONS = [f"{method.upper()} {path}" for path, item in _spec()["paths"].items() for method in item]


@pytest.mark.parametrize("operation", OPERATIONS)
def test_answers_conform_to_the_spec(fuzz: _Fuzz, operation: str) -> None:
    """Every answer, to valid and to invalid input, has a documented status and a body of its documented
    schema, and none is a 5xx. (``schemathesis.pytest.from_fixture`` does not run on pytest 9: the operations
    are driven here with their hypothesis strategies.)"""
    method, path = operation.split(" ", 1)
    api_schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz.app)
    found = [result.ok() for result in api_schema.get_all_operations() if isinstance(result, Ok)]
    [op] = [o for o in found if o.method.upper() == method and o.path == path]
    cases = st.one_of(op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE))

    @given(case=cases)
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=fuzz.headers_for(case.path), checks=CONFORMANCE)

    conforms()
