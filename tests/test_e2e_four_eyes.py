"""Four-eyes end to end on anvil and the Temporal dev server: a wrong-network deposit above the four-eyes
threshold waits for two engineers; the refusals come back to the CLI (and to the Temporal CLI, which sends
what the Web UI's update dialog sends) and leave no event in history; the sweep happens once."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session, select

from chains.evm import EvmChain
from store.ledger import LedgerCredit
from store.signed_txs import SignedTransaction
from tests.history_tools import accepted_updates
from tests.stack_fixtures import Stack, cli_env, run_cli
from workflows import search_attributes as sa

WAIT_S = 60


async def recovery_cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    return await run_cli(cli_env(stack), *args)


async def listed(stack: Stack, *filters: str, wait: bool = True) -> list[str]:
    """Case ids ``recovery case list`` prints for the filters (the visibility store may lag a moment)."""
    ids: list[str] = []
    for _ in range(50):
        code, out, err = await recovery_cli(stack, "case", "list", "--json", *filters)
        assert code == 0, err
        ids = [row["case_id"] for row in json.loads(out)]
        if ids or not wait:
            return ids
        await asyncio.sleep(0.2)
    return ids


async def temporal_cli_update(stack: Stack, case_id: str, name: str, payload: dict[str, str]) -> tuple[int, str]:
    """``temporal workflow update execute``: no identity, no attestation, as typed into the Web UI."""
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    proc = await asyncio.create_subprocess_exec(
        temporal,
        "workflow",
        "update",
        "execute",
        "--address",
        stack.client.service_client.config.target_host,
        "--namespace",
        stack.client.namespace,
        "--workflow-id",
        case_id,
        "--name",
        name,
        "--input",
        json.dumps(payload),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_four_eyes_wrong_network_recovery(dev_stack: Stack) -> None:
    stack = dev_stack
    _, token, address = stack.new_user("whale")
    bsc = EvmChain(stack.chain("bsc"))
    usdt = stack.chain("bsc").token_by_symbol("USDT")
    assert usdt is not None
    hot_before = await bsc.token_balance(usdt.address, stack.hot_wallet)

    tx_hash = await stack.send("bsc", to=address, amount=Decimal("60000"))  # above 50,000 USD: four-eyes
    response = await stack.claim(token, tx_hash, chain="bsc")
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "WRONG_NETWORK_SAME_KEY", case
    assert "above the automatic limit of 20,000 USD" in case["reason"]
    proof = await stack.prove_ownership(token, case_id)  # above ownership_proof_usd: the sender's signature
    assert proof.status_code == 200, proof.text

    code, _, err = await recovery_cli(stack, "case", "approve", case_id, "--engineer", "alice")
    assert code == 1 and "refused:" in err and "first-line engineers cannot approve it" in err, err

    code, _, err = await recovery_cli(stack, "case", "escalate", case_id, "--engineer", "alice", "--reason", " ")
    assert code == 1 and "needs a reason" in err, err
    code, out, err = await recovery_cli(stack, "case", "assign", case_id, "--engineer", "alice", "--to", "bob")
    assert code == 0 and json.loads(out)["answer"] == "assigned to bob", err
    described = await stack.client.get_workflow_handle(case_id).describe()
    assert described.typed_search_attributes.get(sa.ASSIGNED_TO) == "bob"
    assert described.typed_search_attributes.get(sa.APPROVALS_NEEDED) == 2
    detail = await stack.case(token, case_id)
    assert detail["sla"] is not None and detail["sla"]["breached"] is False
    assert case_id in await listed(stack, "--assigned-to", "bob", "--status", "awaiting_approval")
    assert case_id in await listed(stack, "--tier", "first_line", "--due-within-days", "60")
    assert case_id not in await listed(stack, "--tier", "expert", wait=False)
    assert case_id not in await listed(stack, "--sla-breached", wait=False)

    code, out, err = await recovery_cli(stack, "case", "approve", case_id, "--engineer", "bob", "--note", "KYC ok")
    assert code == 0, err
    assert json.loads(out)["answer"] == "approved by bob: 1 of 2 approvals, waiting for a second"

    code, _, err = await recovery_cli(stack, "case", "approve", case_id, "--engineer", "bob")
    assert code == 1 and "already approved" in err, err

    code, text = await temporal_cli_update(stack, case_id, "approve", {"engineer": "chen"})
    assert code != 0 and "must be attested" in text, text

    code, out, err = await recovery_cli(stack, "case", "approve", case_id, "--engineer", "chen")
    assert code == 0 and json.loads(out)["answer"] == "approved by chen", err

    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    amount = 60_000 * 10**18
    credited_units = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert credited_units + fee + gas == amount
    timeline = [e["message"] for e in case["timeline"]]
    assert any(m.startswith("Approved by bob (attested), 1 of 2 approvals: KYC ok") for m in timeline), timeline
    assert "Approved by bob (attested) and chen (attested): KYC ok" in timeline

    # the sweep happened once
    assert await bsc.token_balance(usdt.address, stack.hot_wallet) - hot_before == amount
    with Session(stack.engine) as session:
        sweeps = session.exec(
            select(SignedTransaction).where(SignedTransaction.case_id == case_id, SignedTransaction.purpose == "sweep")
        ).all()
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
    assert len(sweeps) == 1 and len(credits) == 1

    # the audit trail, as support reads it
    code, out, err = await recovery_cli(stack, "case", "audit", case_id)
    assert code == 0, err
    trail = [(r["action"], r["engineer"], r["attested"]) for r in json.loads(out)]
    assert trail == [("assign", "alice", False), ("approve", "bob", True), ("approve", "chen", True)]
    assert json.loads(out)[1]["input"]["note"] == "KYC ok" and json.loads(out)[2]["after"]["decision"] is None

    # the refusals never reached the history: the assignment and the two attested approvals only
    history = await stack.client.get_workflow_handle(case_id).fetch_history()
    accepted = [
        (name, args[0].get("engineer", args[0].get("address")), args[0].get("attestation") is not None)
        for name, args in accepted_updates(history)
    ]
    assert accepted == [
        ("ownership_proven", proof.json()["address"], True),
        ("assign", "alice", False),
        ("approve", "bob", True),
        ("approve", "chen", True),
    ]
