"""The notification dispatcher's messages: its input (carried through continue-as-new), the ``deliver_due``
activity's request and report, and the ``status`` query's answer. Workflow-safe. No secret and no URL travels
in them: the activity reads both from the settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

DISPATCHER_ID = "notification-dispatcher"
"""The one dispatcher's workflow id (started on worker boot, kept when it runs)."""
STINT_SECONDS = 300
"""How long one ``deliver_due`` activity keeps polling the outbox before it reports back."""
STINTS_PER_RUN = 100
"""Activities before continue-as-new (about a dozen history events each)."""


class DispatcherInput(BaseModel):
    stint_seconds: float = Field(default=STINT_SECONDS, ge=0)
    """Each ``deliver_due`` polls this long (0: one pass per activity)."""
    pause_seconds: float = Field(default=1.0, ge=0)
    """Timer between two activities when nothing more was due."""
    disabled_pause_seconds: float = Field(default=300, gt=0)
    """Timer between two looks at the settings while delivery is off (no ``notifications.url``)."""
    stints_per_run: int = Field(default=STINTS_PER_RUN, ge=1)
    heartbeat_timeout_seconds: float = Field(default=30, gt=0)
    """A ``deliver_due`` silent this long (its worker died) is retried elsewhere; it heartbeats every 5 s."""
    delivered: int = 0
    """Totals since the dispatcher was first started, carried through continue-as-new (and the next two)."""
    failed: int = 0
    dead: int = 0


class DeliverRequest(BaseModel):
    run_for_seconds: float = Field(default=STINT_SECONDS, ge=0)


class DeliverReport(BaseModel):
    enabled: bool
    """False while ``notifications.url`` is not set: notifications are written, nothing is sent."""
    passes: int = 0
    delivered: int = 0
    failed: int = 0
    """Attempts that failed and will be retried."""
    dead: int = 0
    """Notifications given up in this activity (their window closed, or one before them in their case did)."""
    more_due: bool = False
    pending: int = 0
    """Not delivered and not dead when the activity ended."""
    dead_total: int = 0
    errors: list[str] = Field(default_factory=list)
    """The last distinct failure reasons (``HTTP 503 Service Unavailable``, ``ConnectError: ...``)."""


class DispatcherStatus(BaseModel):
    enabled: bool | None
    delivered: int
    failed: int
    dead: int
    pending: int | None
    dead_total: int | None
    last_errors: list[str]
