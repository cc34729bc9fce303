"""The staff API: role checks on every ``/v1/staff`` route (SQLite and PostgreSQL), and engineers' actions
through it on a real ``CaseWorkflow`` on the Temporal dev server (whose clock is the wall clock the API
attests by), with the fake activities of ``tests.workflow_fakes``."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from recovery.models import CaseStatus
from recovery.settings import Settings
from services.approvals import trusted_keys
from store import audit, fee_ledger, users
from store.fee_ledger import CaseRef, FeeKind, Route
from store.staff import StaffRole, create_staff
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.history_tools import accepted_updates
from tests.workflow_fakes import (
    POLICY,
    FakeCase,
    facts,
    new_case,
    quote,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow


@dataclass
class StaffApi:
    app: FastAPI
    http: httpx.AsyncClient
    settings: Settings
    tokens: dict[str, str]
    """Staff tokens by name: alice, bob, chen (engineers), fiona (finance), root (admin, not on the roster),
    vera (admin, on the roster); ``user`` is a user's token."""

    async def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {} if who is None else {"Authorization": f"Bearer {self.tokens.get(who, who)}"}
        return await self.http.request(method, path, headers=headers, **kwargs)


STAFF = {
    "alice": StaffRole.ENGINEER,
    "bob": StaffRole.ENGINEER,
    "chen": StaffRole.ENGINEER,
    "fiona": StaffRole.FINANCE,
    "root": StaffRole.ADMIN,
    "vera": StaffRole.ADMIN,
}


async def _open(engine: Engine, tmp_path: Path, client: Client | None) -> AsyncIterator[StaffApi]:
    settings = Settings(data_dir=tmp_path, database_url="sqlite:///unused.db")

    async def temporal() -> Client:
        if client is None:
            raise ConnectionError("no Temporal in this test")
        return client

    tokens: dict[str, str] = {}
    with Session(engine, expire_on_commit=False) as session:
        for name, role in STAFF.items():
            tokens[name] = create_staff(session, name=name, role=role)[1]
        tokens["user"] = users.create_user(
            session, user_id=f"user-{uuid.uuid4().hex[:6]}", signer=MnemonicSigner(), path_for=deposit_path_for_tests
        )[1]
    app = create_app(settings, temporal_client=temporal, engine=engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield StaffApi(app=app, http=http, settings=settings, tokens=tokens)


@pytest.fixture
async def staff_api(db_engine: Engine, tmp_path: Path) -> AsyncIterator[StaffApi]:
    """The API on a real database, with no Temporal behind it (role checks come first)."""
    async for api in _open(db_engine, tmp_path, None):
        yield api


@pytest.fixture
async def staff_api_temporal(
    db_engine: Engine, tmp_path: Path, dev_server_env: WorkflowEnvironment
) -> AsyncIterator[StaffApi]:
    async for api in _open(db_engine, tmp_path, dev_server_env.client):
        yield api


BODIES = {
    "approve": {"note": "ok"},
    "reject": {"reason": "no"},
    "request-info": {"question": "which wallet?"},
    "assign": {"to": "bob"},
    "escalate": {"reason": "contract"},
    "record-execution": {"chain": "bsc", "tx_hash": "0x" + "ab" * 32},
}


def _staff_routes(api: StaffApi) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every staff route of the OpenAPI document, with a valid body for the POSTs."""
    routes = []
    for path, operations in api.app.openapi()["paths"].items():
        if not path.startswith("/v1/staff"):
            continue
        concrete = path.replace("{case_id}", "case-x")
        for method in operations:
            body = BODIES[path.rsplit("/", 1)[1]] if method == "post" else None
            routes.append((method.upper(), concrete, body))
    return routes


async def test_every_staff_route_refuses_users_and_strangers(staff_api: StaffApi) -> None:
    routes = _staff_routes(staff_api)
    assert len(routes) == 9  # cases, case, six actions, fee report (deprecated: /v1/finance/fees)
    for method, path, body in routes:
        for who, code, says in (
            (None, 401, "missing staff API token"),
            ("not-a-token", 401, "invalid staff API token"),
            ("user", 403, "this is a user's API token"),
        ):
            response = await staff_api.call(who, method, path, json=body)
            assert response.status_code == code, (method, path, who, response.text)
            assert says in response.json()["detail"] and "recovery staff create" in response.json()["detail"]


async def test_roles_decide_who_reads_what_and_who_acts(staff_api: StaffApi, db_engine: Engine) -> None:
    for method, path, body in _staff_routes(staff_api):
        response = await staff_api.call("fiona" if "/cases" in path else "bob", method, path, json=body)
        assert response.status_code == 403, (method, path, response.text)
        detail = response.json()["detail"]
        assert detail in (
            "fiona is finance; this route is for engineer, admin only",
            "bob is engineer; this route is for finance, admin only",
        )
    # an admin acts on cases only if on the roster (vera is; root is not)
    response = await staff_api.call("root", "POST", "/v1/staff/cases/case-x/approve", json={})
    assert response.status_code == 403
    assert response.json()["detail"].startswith("root is not on the roster of engineers (alice, bob, chen, vera)")
    response = await staff_api.call("vera", "POST", "/v1/staff/cases/case-x/approve", json={})
    assert response.status_code == 503  # past the role checks: there is no Temporal in this test

    with Session(db_engine) as session:
        for i, fee in enumerate((10**20 + 1, 2 * 10**18)):
            ref = CaseRef(case_id=f"case-{i}", user_id="u", chain="bsc", pattern=None, route=Route.AUTOMATIC)
            for kind, amount in ((FeeKind.CHARGED, fee), (FeeKind.GAS_CHARGED, 10**15)):
                session.add(
                    fee_ledger.entry(
                        ref,
                        kind=kind,
                        key=f"case-{i}:{kind}",
                        asset="USDT",
                        decimals=18,
                        amount=amount,
                        price_usd=Decimal("1.05"),
                    )
                )
        session.commit()
    for who in ("fiona", "root"):
        response = await staff_api.call(who, "GET", "/v1/staff/fees/report", params={"since": "2020-01-01"})
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["since"] == "2020-01-01T00:00:00Z"
        assert report["totals"] == [
            {
                "chain": "bsc",
                "asset": "USDT",
                "count": 2,
                "fee": {"base_units": str(10**20 + 2 * 10**18 + 1), "decimal": "102.000000000000000001"},
                "gas": {"base_units": str(2 * 10**15), "decimal": "0.002"},
                "fee_usd": "107.100000",
            }
        ]
    response = await staff_api.call("fiona", "GET", "/v1/staff/fees/report", params={"until": "2020-01-01"})
    assert response.json()["totals"] == []


async def test_bad_filters_and_bodies_answer_422_with_what_is_wrong(staff_api: StaffApi) -> None:
    response = await staff_api.call("bob", "GET", "/v1/staff/cases", params={"assigned_to": "bob' OR 'x'='x"})
    assert response.status_code == 422 and "quotes are not allowed" in response.json()["detail"]
    response = await staff_api.call("bob", "POST", "/v1/staff/cases/case-x/reject", json={"reason": ""})
    assert response.status_code == 422 and "reason" in response.json()["detail"]
    response = await staff_api.call("bob", "POST", "/v1/staff/cases/case-x/approve", json={"engineer": "chen"})
    assert response.status_code == 422 and "unknown field 'engineer'" in response.json()["detail"]


# --- actions on a real workflow ---------------------------------------------------------------------


def _four_eyes_case(settings: Settings) -> FakeCase:
    """A 60,000 USD wrong-network deposit: above the automatic and four-eyes limits, and a policy that trusts
    the API's attestation key (as the worker does from the same configuration)."""
    deposit = usdt_deposit()
    policy = POLICY.model_copy(update={"attestation_keys": trusted_keys(settings)})
    return FakeCase(
        traces=[trace(deposit)],
        facts=facts(deposit, approval_policy=policy),
        quotes=[quote(amount_usd=Decimal("60000"))],
    )


async def test_second_approval_of_a_four_eyes_case_counts_through_the_api_attested(
    staff_api_temporal: StaffApi, dev_server_env: WorkflowEnvironment, db_engine: Engine
) -> None:
    api = staff_api_temporal
    fake = _four_eyes_case(api.settings)
    case = new_case()
    approve = f"/v1/staff/cases/{case.case_id}/approve"
    async with running(dev_server_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)

        response = await api.call("alice", "POST", approve, json={})
        assert response.status_code == 409
        assert response.json()["detail"].startswith("refused: ") and "four-eyes" in response.json()["detail"]

        response = await api.call("bob", "POST", approve, json={"note": "sender verified"})
        assert response.status_code == 200, response.text
        assert response.json() == {
            "case_id": case.case_id,
            "action": "approve",
            "engineer": "bob",
            "attested": True,
            "answer": "approved by bob: 1 of 2 approvals, waiting for a second",
        }
        response = await api.call("bob", "POST", approve, json={})
        assert response.status_code == 409 and "already approved" in response.json()["detail"]

        # the same second approval typed in (no attestation) does not count ...
        typed = await refused(handle, CaseWorkflow.approve, Decision(engineer="chen"))
        assert "second approval of a four-eyes case must be attested" in typed

        with Session(db_engine) as session:
            audit.append(
                session,
                case_id=case.case_id,
                key="approve-1",
                engineer="bob",
                action="approve",
                attested=True,
                input_json='{"engineer": "bob"}',
                before_json="{}",
                after_json='{"approvals": ["bob (attested)"]}',
            )
        response = await api.call("chen", "GET", f"/v1/staff/cases/{case.case_id}")
        assert response.status_code == 200, response.text
        detail = response.json()
        assert detail["case"] is None  # the fake activities write no case row
        assert detail["workflow"]["status"]["approvals"] == "bob (attested)"
        assert detail["workflow"]["status"]["approvals_needed"] == "2"
        assert detail["workflow"]["evidence"]["approvals"][0]["engineer"] == "bob"
        assert detail["workflow"]["evidence"]["quote"]["amount_usd"] == "60000"
        assert [(a["engineer"], a["attested"]) for a in detail["audit"]] == [("bob", True)]

        # ... but chen's through the API does
        response = await api.call("chen", "POST", approve, json={})
        assert response.status_code == 200 and response.json()["answer"] == "approved by chen", response.text
        result = await handle.result()
        history = await handle.fetch_history()

    assert result.status is CaseStatus.COMPLETED
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]
    assert [(r.engineer, r.attested) for r in fake.audit] == [("bob", True), ("chen", True)]
    # the refusals (alice, bob again, chen typed in) left no event: only the two attested approvals
    accepted = [
        (name, args[0]["engineer"], args[0]["attestation"] is not None) for name, args in accepted_updates(history)
    ]
    assert accepted == [("approve", "bob", True), ("approve", "chen", True)]
    response = await api.call("bob", "POST", approve, json={})
    assert response.status_code == 404 and "no running case" in response.json()["detail"]


async def test_reject_assign_escalate_and_list_through_the_api(
    staff_api_temporal: StaffApi, dev_server_env: WorkflowEnvironment
) -> None:
    api = staff_api_temporal
    fake = _four_eyes_case(api.settings)
    case = new_case()
    base = f"/v1/staff/cases/{case.case_id}"
    async with running(dev_server_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)

        response = await api.call("vera", "POST", f"{base}/assign", json={"to": "nobody"})
        assert response.status_code == 409 and "nobody" in response.json()["detail"], response.text
        response = await api.call("vera", "POST", f"{base}/assign", json={"to": "bob"})
        assert response.status_code == 200 and response.json()["attested"] is False, response.text
        assert (await handle.query(CaseWorkflow.status))["assigned_to"] == "bob"

        listed = await _listed(api, {"status": "awaiting_approval", "assigned_to": "bob"}, case.case_id)
        assert listed["query"] == (
            "WorkflowType = 'CaseWorkflow' AND CaseStatus = 'AWAITING_APPROVAL' AND AssignedTo = 'bob'"
        )
        row = next(r for r in listed["data"] if r["case_id"] == case.case_id)
        assert row["amount_usd"] == 60000 and row["assigned_to"] == "bob"

        tier_before = (await handle.query(CaseWorkflow.status))["tier"]
        response = await api.call("bob", "POST", f"{base}/escalate", json={"reason": "needs an expert"})
        assert response.status_code == 200, response.text
        assert (await handle.query(CaseWorkflow.status))["tier"] != tier_before

        response = await api.call("chen", "POST", f"{base}/reject", json={"reason": "sender not verified"})
        assert response.status_code == 200 and response.json() == {
            "case_id": case.case_id,
            "action": "reject",
            "engineer": "chen",
            "attested": True,
            "answer": "rejected by chen",
        }
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and "sender not verified" in result.reason
    assert fake.sign_requests == [] and fake.settle_requests == []
    assert [(r.action, r.engineer, r.attested) for r in fake.audit][-1] == ("reject", "chen", True)

    response = await api.call("bob", "GET", "/v1/staff/cases/case-does-not-exist")
    assert response.status_code == 404 and "GET /v1/staff/cases" in response.json()["detail"]
    response = await api.call("bob", "POST", "/v1/staff/cases/case-does-not-exist/reject", json={"reason": "x"})
    assert response.status_code == 404


async def _listed(api: StaffApi, params: dict[str, str], case_id: str, timeout: float = 15) -> dict[str, Any]:
    """The list answer once visibility (eventually consistent) shows ``case_id``."""
    deadline = datetime.now(UTC).timestamp() + timeout
    while True:
        response = await api.call("bob", "GET", "/v1/staff/cases", params=params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if any(r["case_id"] == case_id for r in body["data"]) or datetime.now(UTC).timestamp() > deadline:
            assert any(r["case_id"] == case_id for r in body["data"]), body
            return body
        await asyncio.sleep(0.2)
