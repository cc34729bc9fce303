"""What the staff API asks of a case's workflow: its updates by name (a decision attested by this API's
key) and its ``status`` and ``evidence`` queries. Refusals come back as exceptions the routes turn into
409 and 404; nothing here knows about HTTP."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from recovery.i18n import Message, Stored
from recovery.models import RecoveryChoice
from recovery.settings import Settings
from services.attesting import Attester, load_or_create_key
from workflows.case_messages import CaseEvidence, Decision, ManualExecution

log = logging.getLogger(__name__)

UPDATE_TIMEOUT = timedelta(seconds=30)
"""How long an engineer's action may wait for the case's worker (an approval runs a quote and the audit)."""
QUERY_TIMEOUT = timedelta(seconds=5)


class CaseNotRunning(Exception):
    """No workflow of that id, or it has finished: nothing can act on it."""


class ActionRefused(Exception):
    """The workflow's validator (or handler) refused the action; the message is the workflow's."""


class WorkflowBusy(Exception):
    """The case's worker did not answer in time; the action may still be applied."""


def attester_for(settings: Settings) -> Attester:
    """The API's attester, with the key the CLI uses (``attestation_key_file``): the worker trusts its public
    half (``attestation_public_keys``, or in development the public half of that same file)."""
    assert settings.attestation_key_file is not None
    return Attester(load_or_create_key(settings.attestation_key_file))


def attested_decision(
    attester: Attester,
    *,
    case_id: str,
    engineer: str,
    action: str,
    note: str = "",
    reason: str = "",
    fee_usd: Decimal | None = None,
    choice: RecoveryChoice | None = None,
) -> Decision:
    return Decision(
        engineer=engineer,
        note=note,
        reason=reason,
        fee_usd=fee_usd,
        action=choice,
        attestation=attester.attest(case_id=case_id, engineer=engineer, action=action, now=datetime.now(UTC)),
    )


def attested_execution(
    attester: Attester, *, case_id: str, engineer: str, chain: str, tx_hash: str, note: str = ""
) -> ManualExecution:
    return ManualExecution(
        engineer=engineer,
        chain=chain,
        tx_hash=tx_hash,
        note=note,
        attestation=attester.attest(
            case_id=case_id, engineer=engineer, action="record_manual_execution", now=datetime.now(UTC)
        ),
    )


def refusal_text(cause: BaseException | None) -> str:
    """Why the workflow refused an update: a message in the reader's language where the workflow gave its message
    ref (the details of its ``ApplicationError``, as the refusals a user can meet do), else the workflow's words."""
    if not isinstance(cause, ApplicationError):
        return str(cause)
    ref = cause.details[0] if cause.details else None
    if isinstance(ref, dict) and isinstance(ref.get("msgid"), str) and isinstance(ref.get("params", {}), dict):
        return Stored(cause.message, ref["msgid"], ref.get("params") or {})
    return cause.message


async def send_update(client: Client, case_id: str, name: str, payload: BaseModel) -> str:
    """Execute the case workflow's update ``name``; returns the workflow's answer."""
    handle = client.get_workflow_handle(case_id)
    try:
        async with asyncio.timeout(UPDATE_TIMEOUT.total_seconds()):
            answer: str = await handle.execute_update(name, payload, result_type=str)
    except WorkflowUpdateFailedError as exc:
        raise ActionRefused(refusal_text(exc.cause)) from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            log.info("update %s of %s: %s", name, case_id, exc.message)
            raise CaseNotRunning(Message("the case is not running any more: it is closed")) from None
        raise ActionRefused(exc.message) from None
    except TimeoutError:
        seconds = int(UPDATE_TIMEOUT.total_seconds())
        raise WorkflowBusy(Message("the case's worker did not answer within {seconds} s", seconds=seconds)) from None
    return answer


class Queried(BaseModel):
    exists: bool
    status: dict[str, str] | None = None
    evidence: CaseEvidence | None = None
    error: str | None = None


async def query_case(client: Client, case_id: str) -> Queried:
    """The workflow's ``status`` and ``evidence``; ``exists=False`` for an unknown workflow, ``error`` when it
    exists but its worker did not answer."""
    handle = client.get_workflow_handle(case_id)
    try:
        await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return Queried(exists=False)
        return Queried(exists=True, error=exc.message)
    try:
        state: dict[str, str] = await handle.query("status", result_type=dict[str, str], rpc_timeout=QUERY_TIMEOUT)
        evidence: CaseEvidence = await handle.query("evidence", result_type=CaseEvidence, rpc_timeout=QUERY_TIMEOUT)
    except (RPCError, WorkflowQueryFailedError) as exc:
        return Queried(exists=True, error=f"the workflow did not answer its queries: {exc}")
    return Queried(exists=True, status=state, evidence=evidence)
