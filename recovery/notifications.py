"""Notifications of case changes to the exchange's notification service: what one says (its JSON body, the
webhook's ``type``) and when a failed delivery is tried again. Pure: the outbox is ``store.notifications``, the
delivery ``services.notifications``. Workflow-safe (standard library and pydantic).

Every timeline event of a case is one notification, written in the same transaction as the event; see
docs/notifications.md for the payload, the headers and the retry schedule.
"""

from __future__ import annotations

import json
import random
import re
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from recovery.models import BaseUnits, CaseStatus, MessageRef

TYPE_PREFIX = "case."
RERUN_TYPE = "case.rerun_reported"
"""A step reported after the case was closed (a re-run, e.g. a Reset in the Web UI): the case is unchanged."""

_NUMBERED = re.compile(r"-\d+$")
_NOT_NAME = re.compile(r"[^a-z0-9_]+")


def event_type(key: str) -> str:
    """The webhook ``type`` of a timeline event with key ``key``: ``case.`` and the key without its counter,
    in snake case (``classified`` -> ``case.classified``, ``info-request-2`` -> ``case.info_request``,
    ``sla-reminder-1`` -> ``case.sla_reminder``, ``incident-3`` -> ``case.incident``)."""
    kind = _NOT_NAME.sub("_", _NUMBERED.sub("", key.strip().lower())).strip("_")
    return TYPE_PREFIX + (kind or "event")


class EventOut(BaseModel):
    key: str
    """The timeline event's key, unique within the case (``classified``, ``info-request-2``, ...)."""
    status: CaseStatus
    """The case's status the event records."""
    at: datetime
    due_at: datetime | None = None
    """Until when the case waits for what the event asks of the user (an answer, a quote's acceptance), if
    anything."""


class CaseOut(BaseModel):
    """The case as it stands after the change. Amounts are integers in base units, as strings."""

    status: CaseStatus
    pattern: str | None = None
    chain: str | None = None
    tx_hash: str
    log_index: int | None = None
    asset: str | None = None
    token_address: str | None = None
    decimals: int | None = None
    amount: BaseUnits | None = None
    fee: BaseUnits | None = None
    gas: BaseUnits | None = None
    credited: BaseUnits | None = None


class NotificationData(BaseModel):
    case_id: str
    user_id: str
    seq: int = Field(ge=1)
    """1, 2, 3... per case: the order in which the case's notifications are delivered."""
    locale: str
    message: str
    """The timeline's text of the event in ``locale``."""
    text: MessageRef | None = None
    """The same text as a message id and values (docs/i18n.md), for a receiver that shows it in another
    language from its own catalogs; None for an event that is English only."""
    event: EventOut
    case: CaseOut


class NotificationBody(BaseModel):
    """The webhook's JSON body (the Standard Webhooks shape: ``type``, ``timestamp``, ``data``)."""

    type: str
    timestamp: datetime
    """When the event happened (not when it was sent: that is the ``webhook-timestamp`` header)."""
    data: NotificationData

    def to_json(self) -> str:
        """The exact text sent (and signed) on every attempt: stored once, never rebuilt."""
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, separators=(",", ":"))


# --- retries --------------------------------------------------------------------------------------


def retry_ceiling(failures: int, *, base_s: float, cap_s: float) -> float:
    """The longest wait after the ``failures``-th failed attempt (1, 2, ...): ``base_s * 2**(failures-1)``,
    at most ``cap_s``."""
    if failures < 1:
        raise ValueError(f"failures counts from 1, got {failures}")
    exponent = min(failures - 1, 64)  # 2**64 * any sane base is far above any cap
    return min(cap_s, base_s * 2.0**exponent)


def retry_delay(failures: int, *, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after the ``failures``-th failed attempt: exponential backoff with full jitter, a
    uniform draw from ``[min(1, ceiling), ceiling]`` (a receiver coming back is not hit by every sender at
    once; never less than a second unless the ceiling itself is)."""
    ceiling = retry_ceiling(failures, base_s=base_s, cap_s=cap_s)
    return rng.uniform(min(1.0, ceiling), ceiling)


def next_attempt_at(
    now: datetime, *, failures: int, give_up_at: datetime, base_s: float, cap_s: float, rng: random.Random
) -> datetime | None:
    """When to try again after the ``failures``-th failure at ``now``; None once ``now`` is at or past
    ``give_up_at`` (the notification is dead). Attempts go on until then, so a notification is retried for
    the whole window (the last attempt falls after it)."""
    if now.tzinfo is None or give_up_at.tzinfo is None:
        raise ValueError("naive datetime: use datetime.now(UTC)")
    if now >= give_up_at:
        return None
    return now + timedelta(seconds=retry_delay(failures, base_s=base_s, cap_s=cap_s, rng=rng))
