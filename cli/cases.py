"""``recovery case``: inspect cases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import BaseModel
from sqlmodel import Session

from cli.common import CliError, load_settings, one_line_errors, open_engine, print_json, temporal_client
from recovery.models import RecoveryChoice
from recovery.settings import Settings
from recovery.units import format_units
from store.cases import Case, CaseEvent
from workflows.case_queries import list_query

if TYPE_CHECKING:
    from services.attesting import Attester

app = typer.Typer(help="Inspect cases and decide on those awaiting an engineer.", no_args_is_help=True)


def case_record(case: Case, events: list[CaseEvent]) -> dict[str, Any]:
    """A case row and its timeline as JSON-safe data (amounts as integer strings)."""
    dumped = case.model_dump(mode="json")
    data = {name: dumped[name] for name in type(case).model_fields if name in dumped}
    for name in ("amount", "fee", "gas", "credited"):
        value = getattr(case, name)
        data[name] = None if value is None else str(value)
        if value is not None and case.decimals is not None:
            data[f"{name}_decimal"] = format_units(value, case.decimals)
    if case.quote_json:
        data["quote"] = json.loads(data.pop("quote_json"))
    data["timeline"] = [
        {"at": e.at.isoformat(), "key": e.key, "status": str(e.status), "message": e.message} for e in events
    ]
    return data


@app.command("show")
@one_line_errors
def case_show(case_id: Annotated[str, typer.Argument(help="The case id, e.g. case-bsc-0xabc...-7")]) -> None:
    """Print a case and its timeline as JSON, from the database."""
    from store.cases import get_case, timeline

    engine = open_engine(load_settings())
    try:
        with Session(engine) as session:
            case = get_case(session, case_id=case_id)
            if case is None:
                raise CliError(f"no case {case_id!r}")
            print_json(case_record(case, timeline(session, case_id=case_id)))
    finally:
        engine.dispose()


@app.command("list")
@one_line_errors
def case_list(
    status: Annotated[str | None, typer.Option(help="Only cases in this status, e.g. AWAITING_APPROVAL.")] = None,
    assigned_to: Annotated[str | None, typer.Option(help="Only cases assigned to this engineer.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only cases with this tier: first_line, engineering, ...")] = None,
    sla_breached: Annotated[bool, typer.Option("--sla-breached", help="Only cases past their SLA deadline.")] = False,
    due_within_days: Annotated[
        int | None, typer.Option(help="Only cases whose SLA deadline is within this many days.", min=0)
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many cases.", min=1, max=1000)] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List cases from Temporal's visibility store, newest first, with the engineers' filters."""
    settings = load_settings()
    query = list_query(
        status=status,
        assigned_to=assigned_to,
        tier=tier,
        sla_breached=sla_breached,
        due_within_days=due_within_days,
        now=datetime.now(UTC),
    )
    rows = asyncio.run(_list(settings, query, limit))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"no case matches {query}")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Cases")
    for column in rows[0]:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    Console().print(table)


async def _list(settings: Settings, query: str, limit: int) -> list[dict[str, Any]]:
    from workflows import search_attributes as sa

    client = await temporal_client(settings)
    rows: list[dict[str, Any]] = []
    async for execution in client.list_workflows(query, limit=limit):
        found = execution.typed_search_attributes
        deadline = found.get(sa.SLA_DEADLINE)
        rows.append(
            {
                "case_id": execution.id,
                "status": found.get(sa.CASE_STATUS),
                "pattern": found.get(sa.PATTERN),
                "chain": found.get(sa.CHAIN),
                "asset": found.get(sa.ASSET),
                "amount_usd": found.get(sa.AMOUNT_USD),
                "tier": found.get(sa.TIER),
                "assigned_to": found.get(sa.ASSIGNED_TO),
                "sla_state": found.get(sa.SLA_STATE),
                "sla_deadline": deadline.isoformat() if deadline else None,
            }
        )
    return rows


@app.command("audit")
@one_line_errors
def case_audit(case_id: Annotated[str, typer.Argument(help="The case id, e.g. case-bsc-0xabc...-7")]) -> None:
    """Print the case's audit trail as JSON: every engineer action with its input and the state before
    and after (append-only)."""
    from store.audit import entries

    engine = open_engine(load_settings())
    try:
        with Session(engine) as session:
            rows = entries(session, case_id=case_id)
    finally:
        engine.dispose()
    print_json(
        [
            {
                "at": r.at.isoformat(),
                "engineer": r.engineer,
                "action": r.action,
                "attested": r.attested,
                "input": json.loads(r.input_json),
                "before": json.loads(r.before_json),
                "after": json.loads(r.after_json),
            }
            for r in rows
        ]
    )


# --- decisions --------------------------------------------------------------------------------------

EngineerOption = Annotated[str, typer.Option("--engineer", help="Your name on the roster of engineers.")]
CaseIdArgument = Annotated[str, typer.Argument(help="The case id (the workflow id), e.g. case-bsc-0xabc...-7")]


@app.command("approve")
@one_line_errors
def case_approve(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    note: Annotated[str, typer.Option(help="A note for the timeline and the audit.")] = "",
    fee_usd: Annotated[
        str | None, typer.Option(help="The fee in USD instead of the policy's percentage, within its bounds.")
    ] = None,
    action: Annotated[
        RecoveryChoice | None,
        typer.Option(help="What to carry out, where the case allows it (default: as classified)"),
    ] = None,
) -> None:
    """Approve a case awaiting approval, attested: the workflow can verify that this CLI sent it (a case
    above the four-eyes threshold needs a second approval by another engineer)."""
    _decide(case_id, "approve", engineer=engineer, note=note, fee_usd=_usd(fee_usd), choice=action)


@app.command("record-execution")
@one_line_errors
def case_record_execution(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    chain: Annotated[str, typer.Option(help="The chain the recovery transaction is on, e.g. bsc.")],
    tx_hash: Annotated[str, typer.Option(help="The recovery transaction, done outside the engine.")],
    note: Annotated[str, typer.Option(help="What was done, for the timeline and the audit.")] = "",
) -> None:
    """Book a recovery carried out outside the engine (a contract redeploy, an issuer's rescue, a fork's keys,
    a non-EVM chain), attested. The engine checks the transaction on chain first: the deposit's asset and
    amount, from the address holding it to the exchange's hot wallet, final; a mismatch is refused with what
    is wrong."""
    from workflows.case_messages import ManualExecution

    settings = load_settings()
    attester = _attester(settings)
    execution = ManualExecution(
        engineer=engineer,
        chain=chain,
        tx_hash=tx_hash,
        note=note,
        attestation=attester.attest(case_id=case_id, engineer=engineer, action="record_manual_execution"),
    )
    answer = asyncio.run(_send(settings, case_id, "record_manual_execution", execution))
    print_json({"case_id": case_id, "action": "record_manual_execution", "engineer": engineer, "answer": answer})


def _usd(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"--fee-usd {text!r} is not an amount: write it like 25.00") from None
    if not value.is_finite():
        raise CliError(f"--fee-usd {text!r} is not an amount: write it like 25.00")
    return value


@app.command("reject")
@one_line_errors
def case_reject(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    reason: Annotated[str, typer.Option(help="Why; the user reads it.")],
) -> None:
    """Reject a case awaiting approval, attested; the reason is what the user reads."""
    _decide(case_id, "reject", engineer=engineer, reason=reason)


@app.command("escalate")
@one_line_errors
def case_escalate(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    reason: Annotated[str, typer.Option(help="What the next tier should know.")],
) -> None:
    """Send a case to the next tier (first_line → engineering → expert)."""
    from workflows.case_messages import Escalation

    settings = load_settings()
    answer = asyncio.run(_send(settings, case_id, "escalate", Escalation(engineer=engineer, reason=reason)))
    print_json({"case_id": case_id, "action": "escalate", "engineer": engineer, "answer": answer})


@app.command("assign")
@one_line_errors
def case_assign(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    to: Annotated[str, typer.Option("--to", help="The engineer who will own the case.")],
) -> None:
    """Make an engineer on the roster the owner of a case."""
    from workflows.case_messages import Assignment

    settings = load_settings()
    answer = asyncio.run(_send(settings, case_id, "assign", Assignment(engineer=engineer, to=to)))
    print_json({"case_id": case_id, "action": "assign", "engineer": engineer, "to": to, "answer": answer})


@app.command("request-info")
@one_line_errors
def case_request_info(
    case_id: CaseIdArgument,
    engineer: EngineerOption,
    question: Annotated[str, typer.Option(help="What the user should answer (they read it as is).")],
) -> None:
    """Ask the user a question; the case waits for the answer (its SLA clock stopped) and expires when none
    comes within the configured working days."""
    from workflows.case_messages import InfoRequest

    settings = load_settings()
    answer = asyncio.run(_send(settings, case_id, "request_info", InfoRequest(engineer=engineer, question=question)))
    print_json({"case_id": case_id, "action": "request_info", "engineer": engineer, "answer": answer})


def _decide(
    case_id: str,
    action: str,
    *,
    engineer: str,
    note: str = "",
    reason: str = "",
    fee_usd: Decimal | None = None,
    choice: RecoveryChoice | None = None,
) -> None:
    from workflows.case_messages import Decision

    settings = load_settings()
    attester = _attester(settings)
    decision = Decision(
        engineer=engineer,
        note=note,
        reason=reason,
        fee_usd=fee_usd,
        action=choice,
        attestation=attester.attest(case_id=case_id, engineer=engineer, action=action),
    )
    answer = asyncio.run(_send(settings, case_id, action, decision))
    print_json({"case_id": case_id, "action": action, "engineer": engineer, "attested": True, "answer": answer})


def _attester(settings: Settings) -> Attester:
    """This CLI's attester (the key the worker trusts the public half of)."""
    from services.attesting import Attester, load_or_create_key

    assert settings.attestation_key_file is not None
    return Attester(load_or_create_key(settings.attestation_key_file))


async def _send(settings: Settings, case_id: str, action: str, payload: BaseModel) -> str:
    """Send the case workflow's update ``action``; a validator's refusal becomes the CLI's error."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError
    from temporalio.service import RPCError, RPCStatusCode

    from workflows.case_workflow import CaseWorkflow

    client = await temporal_client(settings)
    updates: dict[str, Any] = {
        "approve": CaseWorkflow.approve,
        "reject": CaseWorkflow.reject,
        "escalate": CaseWorkflow.escalate,
        "assign": CaseWorkflow.assign,
        "request_info": CaseWorkflow.request_info,
        "record_manual_execution": CaseWorkflow.record_manual_execution,
    }
    try:
        answer: str = await client.get_workflow_handle(case_id).execute_update(updates[action], payload)
        return answer
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause)
        raise CliError(f"refused: {message}") from None
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            raise CliError(f"no running case {case_id!r}: check the id with `recovery case show`") from None
        raise CliError(f"Temporal refused the update: {exc.message}") from None
