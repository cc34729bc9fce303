"""Custom search attributes every case workflow carries (the recovery engineers filter on them), and those of
the fee reconciliation's runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio.common import SearchAttributeKey

if TYPE_CHECKING:
    from temporalio.client import Client

CASE_STATUS = SearchAttributeKey.for_keyword("CaseStatus")
PATTERN = SearchAttributeKey.for_keyword("Pattern")
CHAIN = SearchAttributeKey.for_keyword("Chain")
ASSET = SearchAttributeKey.for_keyword("Asset")
AMOUNT_USD = SearchAttributeKey.for_int("AmountUsd")
"""Whole US dollars, rounded down: for filtering only; exact amounts live on the case."""
USER_ID = SearchAttributeKey.for_keyword("UserId")
ASSIGNED_TO = SearchAttributeKey.for_keyword("AssignedTo")
TIER = SearchAttributeKey.for_keyword("Tier")
SLA_DEADLINE = SearchAttributeKey.for_datetime("SlaDeadline")
SLA_STATE = SearchAttributeKey.for_keyword("SlaState")
"""``on_track``, ``due_soon``, ``target_missed``, ``breached``: moved by the case's own timers, because the
UI's saved views are fixed strings and a list query cannot say ``now()``."""
SLA_BREACHED = SearchAttributeKey.for_bool("SlaBreached")
APPROVALS_NEEDED = SearchAttributeKey.for_int("ApprovalsNeeded")
VIP = SearchAttributeKey.for_bool("Vip")
RECONCILIATION = SearchAttributeKey.for_keyword("Reconciliation")
"""On a ``ReconcileWorkflow`` run: ``ok``, ``mismatch`` or ``uncheckable`` (a closed case's own attributes can no
longer change, so the run carries the finding: list ``Reconciliation = "mismatch"``)."""
RECONCILIATION_MISMATCHES = SearchAttributeKey.for_keyword_list("ReconciliationMismatches")
"""On a ``ReconcileWorkflow`` run: the ids of the cases that did not reconcile (the first ones, within the size
limit of a search attribute value; every finding is in ``case_reconciliation``)."""

ALL: list[SearchAttributeKey[Any]] = [
    CASE_STATUS,
    PATTERN,
    CHAIN,
    ASSET,
    AMOUNT_USD,
    USER_ID,
    ASSIGNED_TO,
    TIER,
    SLA_DEADLINE,
    SLA_STATE,
    SLA_BREACHED,
    APPROVALS_NEEDED,
    VIP,
    RECONCILIATION,
    RECONCILIATION_MISMATCHES,
]
"""Within the SQL visibility store's limits per namespace: 8 of 10 Keyword, 2 of 3 Int, 1 of 3 Datetime,
2 of 3 Bool, 1 of 3 KeywordList."""


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    kinds = {
        "KEYWORD": "Keyword",
        "INT": "Int",
        "DATETIME": "Datetime",
        "BOOL": "Bool",
        "KEYWORD_LIST": "KeywordList",
    }
    flags: list[str] = []
    for key in ALL:
        flags += ["--search-attribute", f"{key.name}={kinds[key.indexed_value_type.name]}"]
    return flags


async def register_missing(client: Client) -> list[str]:
    """Register on the client's namespace every search attribute of ``ALL`` it does not know yet; returns
    their names. ``temporal server start-dev --search-attribute`` only registers them in a new database
    file, so a dev stack restarted on an older file (or a server upgraded to this version) needs this."""
    from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

    known = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = [key for key in ALL if key.name not in known.custom_attributes]
    if missing:
        await register(client, missing)
    return sorted(key.name for key in missing)


async def register(client: Client, keys: list[SearchAttributeKey[Any]]) -> None:
    """Register ``keys`` on the client's namespace (the time-skipping test server, which cannot list them,
    takes all of them this way)."""
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest

    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in keys},
        )
    )
