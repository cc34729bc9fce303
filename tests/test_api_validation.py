"""Bad requests fail fast and clearly: before any chain or Temporal call, writing nothing.

No chain and no Temporal server here: the tracer, the Temporal connector and the case starter are fakes
that record their calls. The last tests drive the claim rules with a scripted tracer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlmodel import Session
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import ChainTracer, ChainUnreachable, TxHashFormatError
from recovery.models import (
    CaseHandling,
    CaseStatus,
    CaseUpdate,
    Quote,
    Settlement,
    SlaState,
    TimelineEvent,
    TraceResult,
    Transfer,
    case_id_for,
)
from recovery.roster import Tier
from recovery.settings import Settings
from services.settlement import settle_case
from store import cases, users
from tests.api_fixtures import MAX_BODY, TX, Api


def assert_refused(api: Api, response: httpx.Response, code: int, *needles: str) -> str:
    """The status, a ``{"detail": str}`` body naming what to fix, no trace, nothing called or written."""
    assert response.status_code == code, response.text
    body = response.json()
    assert set(body) == {"detail"} and isinstance(body["detail"], str), body
    detail: str = body["detail"]
    for needle in needles:
        assert needle.lower() in detail.lower(), detail
    assert "Traceback" not in response.text
    assert api.fakes.untouched, api.fakes
    assert api.case_rows() == [] and api.event_rows() == []
    return detail


# --- the transaction hash -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tx_hash",
    [
        "0x123",
        "0x" + "g" * 64,
        "0x" + "ab" * 32 + "00",
        "",
        "0x" + "ab" * 31 + " ",
        123,
        None,
        ["0x" + "ab" * 32],
    ],
)
async def test_malformed_tx_hash(api: Api, tx_hash: Any) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": tx_hash}, headers=api.auth())
    assert_refused(api, response, 422, "tx_hash", "0x and 64 hexadecimal")


async def test_a_hash_no_configured_chain_family_uses_is_refused() -> None:
    evm_only = Settings().chains
    tracer = ChainTracer()
    with pytest.raises(TxHashFormatError, match="0x"):
        await tracer.locate(evm_only, "ab" * 32)  # a Bitcoin/Tron/XRP-style id, and only EVM chains here
    with pytest.raises(TxHashFormatError, match="not a transaction id on bsc"):
        await tracer.trace(evm_only[1], "ab" * 32)


async def test_missing_tx_hash(api: Api) -> None:
    response = await api.http.post("/v1/cases", json={"chain": "bsc"}, headers=api.auth())
    assert_refused(api, response, 422, "tx_hash is required")


# --- the chain ------------------------------------------------------------------------------------


@pytest.mark.parametrize("chain", ["solana", "bnb", " ", "ethereum-mainnet"])
async def test_unknown_chain(api: Api, chain: str) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": TX, "chain": chain}, headers=api.auth())
    assert_refused(api, response, 422, "unknown chain", "ethereum, bsc")


async def test_chain_of_wrong_type(api: Api) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": TX, "chain": 56}, headers=api.auth())
    assert_refused(api, response, 422, "chain")


# --- the body -------------------------------------------------------------------------------------


async def test_extra_fields_are_refused(api: Api) -> None:
    body = {"tx_hash": TX, "chain": "bsc", "amount": "100", "user_id": "bob"}
    response = await api.http.post("/v1/cases", json=body, headers=api.auth())
    detail = assert_refused(api, response, 422, "unknown field 'amount'", "remove it")
    assert "user_id" in detail


async def test_oversized_body_by_content_length(api: Api) -> None:
    body = json.dumps({"tx_hash": TX, "padding": "x" * (MAX_BODY + 10)})
    response = await api.http.post(
        "/v1/cases", content=body, headers={**api.auth(), "Content-Type": "application/json"}
    )
    assert_refused(api, response, 413, "too large", f"{MAX_BODY} bytes")


async def test_oversized_body_streamed_without_content_length(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"tx_hash": "' + TX.encode() + b'", "padding": "'
        for _ in range(10):
            yield b"x" * 512
        yield b'"}'

    response = await api.http.post(
        "/v1/cases", content=chunks(), headers={**api.auth(), "Content-Type": "application/json"}
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_refused(api, response, 413, "too large")


async def test_lying_content_length_header(api: Api) -> None:
    response = await api.http.post(
        "/v1/cases",
        content=b'{"tx_hash": "x"}',
        headers={**api.auth(), "Content-Type": "application/json", "Content-Length": "abc"},
    )
    assert_refused(api, response, 400, "Content-Length")


@pytest.mark.parametrize(
    ("content", "content_type", "needle"),
    [
        (b"tx_hash=" + TX.encode(), "application/json", "not valid JSON"),
        (b'{"tx_hash": "' + TX.encode() + b'"', "application/json", "not valid JSON"),
        (b"tx_hash=" + TX.encode(), "application/x-www-form-urlencoded", "Content-Type: application/json"),
        (TX.encode(), "text/plain", "Content-Type: application/json"),
        (b"\xff\xfe\x00garbage", "application/json", "JSON"),
        (b"[1, 2]", "application/json", "must be a JSON object"),
        (b'"' + TX.encode() + b'"', "application/json", "must be a JSON object"),
        (b"", "application/json", "missing"),
    ],
)
async def test_non_json_body(api: Api, content: bytes, content_type: str, needle: str) -> None:
    response = await api.http.post("/v1/cases", content=content, headers={**api.auth(), "Content-Type": content_type})
    detail = assert_refused(api, response, 422, needle)
    assert "tx_hash" in detail  # says what to send


# --- the token ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic YWxpY2U6cGFzcw=="},
        {"Authorization": "Token abc"},
    ],
)
async def test_missing_token(api: Api, headers: dict[str, str]) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=headers)
    assert_refused(api, response, 401, "missing API token", "Authorization: Bearer", "recovery users create")
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("token", ["wrong", "x" * 43, "a" * 64])
async def test_wrong_token(api: Api, token: str) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers={"Authorization": f"Bearer {token}"})
    assert_refused(api, response, 401, "invalid API token", "recovery users create")


async def test_token_hash_is_not_a_token(api: Api) -> None:
    with Session(api.engine) as session:
        alice = users.get_user(session, user_id="alice")
        assert alice is not None
    response = await api.http.post(
        "/v1/cases", json={"tx_hash": TX}, headers={"Authorization": f"Bearer {alice.token_hash}"}
    )
    assert_refused(api, response, 401, "invalid API token")


async def test_reads_need_a_token_too(api: Api) -> None:
    for path in ("/v1/cases", "/v1/cases/case-x"):
        response = await api.http.get(path)
        assert_refused(api, response, 401, "recovery users create")


# --- reads ----------------------------------------------------------------------------------------


async def test_unknown_or_foreign_case_is_404(api: Api) -> None:
    with Session(api.engine) as session:
        cases.create_case(session, case_id="case-bob", user_id="bob", chain="bsc", tx_hash=TX, log_index=0)
    for case_id in ("case-bob", "case-nope"):
        response = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth("alice"))
        assert response.status_code == 404
        assert set(response.json()) == {"detail"} and "GET /v1/cases" in response.json()["detail"]
    assert (await api.http.get("/v1/cases/case-bob", headers=api.auth("bob"))).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=1000",
        "limit=9223372036854775808",
        "offset=9223372036854775808",  # the hardening report's 500: a retired parameter, refused by name
        "limit=abc",
        "cursor=not-a-cursor",
        "status=LOST",
        "created_from=yesterday",
    ],
)
async def test_bad_list_parameters(api: Api, query: str) -> None:
    response = await api.http.get(f"/v1/cases?{query}", headers=api.auth())
    assert_refused(api, response, 422, query.split("=")[0])


async def test_healthz_and_docs(api: Api) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    assert (await api.http.get("/docs")).status_code == 200
    schema = (await api.http.get("/openapi.json")).json()
    assert "/v1/cases" in schema["paths"] and "/v1/cases/{case_id}" in schema["paths"]


# --- the claim rules, with a scripted tracer ------------------------------------------------------


def usdt_transfer(recipient: str, log_index: int = 7, amount: int = 100 * 10**18) -> Transfer:
    return Transfer(
        chain="bsc",
        tx_hash=TX,
        log_index=log_index,
        token_address="0x55d398326f99059fF775485246999027B3197955",
        asset="USDT",
        decimals=18,
        sender="0x" + "11" * 20,
        recipient=recipient,
        amount=amount,
    )


def found(*transfers: Transfer) -> TraceResult:
    return TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=True, transfers=list(transfers))


async def test_claim_of_own_deposit(api: Api) -> None:
    api.fakes.trace_result = found(
        usdt_transfer("0x" + "99" * 20, log_index=2),
        usdt_transfer(api.addresses["alice"].lower(), log_index=9, amount=5),
        usdt_transfer(api.addresses["alice"], log_index=7, amount=100_500_000_000_000_000_000),
    )
    response = await api.http.post("/v1/cases", json={"tx_hash": TX.upper().replace("0X", "0x")}, headers=api.auth())
    assert response.status_code == 201, response.text
    case_id = case_id_for("bsc", TX, 7)
    body = response.json()
    assert (body["case_id"], body["status"]) == (case_id, "RECEIVED") and set(body) == {"case_id", "status", "answer"}
    assert response.headers["location"] == f"/v1/cases/{case_id}"
    [started] = api.fakes.starts
    assert (started.case_id, started.chain, started.log_index, started.asset, started.amount_display) == (
        case_id,
        "bsc",
        7,
        "USDT",
        "100.5",
    )
    detail = (await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())).json()
    assert detail["amount"] == {"base_units": "100500000000000000000", "decimal": "100.5"}
    assert [e["status"] for e in detail["timeline"]] == ["RECEIVED"]
    listed = (await api.http.get("/v1/cases", headers=api.auth())).json()
    assert listed["count"] == 1 and listed["data"][0]["case_id"] == case_id

    # the same claim again: 409 to its owner, 403 to anyone else
    again = await api.http.post("/v1/cases", json={"tx_hash": TX, "chain": "bsc"}, headers=api.auth())
    assert again.status_code == 409 and again.json()["case_id"] == case_id
    other = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth("bob"))
    assert other.status_code == 403
    assert len(api.fakes.starts) == 1


async def test_claim_of_someone_elses_deposit(api: Api) -> None:
    api.fakes.trace_result = found(usdt_transfer(api.addresses["bob"]))
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth("alice"))
    assert response.status_code == 403
    assert "belongs to another account" in response.json()["detail"]
    assert api.case_rows() == [] and api.fakes.starts == []


async def test_claim_not_found_goes_to_the_workflow(api: Api) -> None:
    response = await api.http.post("/v1/cases", json={"tx_hash": TX, "chain": "BSC"}, headers=api.auth())
    assert response.status_code == 201, response.text
    assert response.json()["case_id"] == case_id_for("bsc", TX, None)
    assert api.fakes.traces == [("bsc", TX)]
    response = await api.http.post("/v1/cases", json={"tx_hash": "0x" + "cd" * 32}, headers=api.auth())
    assert response.json()["case_id"] == case_id_for("any", "0x" + "cd" * 32, None)


async def test_unreachable_chain_is_503(api: Api) -> None:
    api.fakes.trace_error = ChainUnreachable(["bsc"])
    response = await api.http.post("/v1/cases", json={"tx_hash": TX, "chain": "bsc"}, headers=api.auth())
    assert response.status_code == 503
    assert response.json() == {"detail": "chain bsc unreachable, try again later"}
    assert api.case_rows() == []


async def test_failed_start_leaves_nothing(api: Api) -> None:
    api.fakes.trace_result = found(usdt_transfer(api.addresses["alice"]))
    api.fakes.start_error = RuntimeError("temporal down: secret=hunter2")
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 503
    assert "try again later" in response.json()["detail"] and "hunter2" not in response.text
    assert api.case_rows() == [] and api.event_rows() == []


async def test_workflow_already_started_is_409(api: Api) -> None:
    api.fakes.trace_result = found(usdt_transfer(api.addresses["alice"]))
    api.fakes.start_error = WorkflowAlreadyStartedError("id", "CaseWorkflow")
    response = await api.http.post("/v1/cases", json={"tx_hash": TX}, headers=api.auth())
    assert response.status_code == 409
    assert response.json()["case_id"] == case_id_for("bsc", TX, 7)


async def test_case_detail_amounts_and_fees(api: Api) -> None:
    amount = 100 * 10**18
    quote = Quote(
        asset="USDT",
        decimals=18,
        amount=amount,
        amount_usd=Decimal("100"),
        percent_bps=500,
        fee_usd=Decimal("10.00"),
        fee=10 * 10**18,
        gas_estimate=2 * 10**16,
        net_estimate=amount - 10 * 10**18 - 2 * 10**16,
    )
    with Session(api.engine) as session:
        cases.create_case(
            session,
            case_id="case-1",
            user_id="alice",
            chain="bsc",
            tx_hash=TX,
            log_index=7,
            deposit=usdt_transfer(api.addresses["alice"], amount=amount),
        )
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id="case-1",
                event=TimelineEvent(key="quoted", status=CaseStatus.RECOVERING, message="q"),
                quote=quote,
            ),
        )
    detail = (await api.http.get("/v1/cases/case-1", headers=api.auth())).json()
    assert detail["fees"] == {
        "fee": {"base_units": str(10 * 10**18), "decimal": "10"},
        "gas": {"base_units": str(2 * 10**16), "decimal": "0.02"},
        "fee_usd": "10.00",
        "percent": "5",
        "final": False,
        "policy": "default",
        "basis": None,
        "network_cost": "passed",
        "acceptance": None,
    }
    assert detail["net_estimate"] == {"base_units": str(quote.net_estimate), "decimal": "89.98"}
    assert detail["credited"] is None

    with Session(api.engine) as session:
        assert settle_case(
            session,
            case_id="case-1",
            user_id="alice",
            deposit_key="bsc:x:7",
            chain="bsc",
            asset="USDT",
            settlement=Settlement(
                recovered=amount, credited=amount - 10 * 10**18 - 10**16, fee=10 * 10**18, gas=10**16, gas_native=1
            ),
            fee_usd=Decimal("10.00"),
        )
    detail = (await api.http.get("/v1/cases/case-1", headers=api.auth())).json()
    assert detail["status"] == "COMPLETED"
    assert detail["credited"] == {"base_units": str(amount - 10 * 10**18 - 10**16), "decimal": "89.99"}
    assert detail["fees"]["gas"]["decimal"] == "0.01" and detail["fees"]["final"] is True
    assert detail["net_estimate"] is None
    assert [e["status"] for e in detail["timeline"]] == ["RECEIVED", "RECOVERING", "COMPLETED"]


async def test_case_detail_shows_the_sla_once_the_case_waits_for_an_engineer(api: Api) -> None:
    with Session(api.engine) as session:
        cases.create_case(session, case_id="case-sla", user_id="alice", chain="bsc", tx_hash=TX, log_index=7)
    detail = (await api.http.get("/v1/cases/case-sla", headers=api.auth())).json()
    assert detail["sla"] is None

    started = datetime(2026, 12, 21, 10, tzinfo=UTC)
    handling = CaseHandling(
        tier=Tier.FIRST_LINE,
        sla_started_at=started,
        sla_target_at=started + timedelta(days=23),
        sla_deadline_at=started + timedelta(days=44),
    )
    for key, state in (("awaiting-approval", SlaState.ON_TRACK), ("sla-deadline", SlaState.BREACHED)):
        with Session(api.engine) as session:
            cases.apply_case_update(
                session,
                update=CaseUpdate(
                    case_id="case-sla",
                    event=TimelineEvent(key=key, status=CaseStatus.AWAITING_APPROVAL, message=key),
                    handling=handling.model_copy(update={"sla_state": state}),
                ),
            )
        sla = (await api.http.get("/v1/cases/case-sla", headers=api.auth())).json()["sla"]
        assert sla == {
            "started_at": "2026-12-21T10:00:00Z",
            "target_at": "2027-01-13T10:00:00Z",
            "deadline_at": "2027-02-03T10:00:00Z",
            "paused": False,
            "breached": state is SlaState.BREACHED,
        }
