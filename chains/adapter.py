"""What the adapters over an :class:`~chains.endpoints.EndpointPool` share (Bitcoin, Tron, XRP Ledger).

An adapter holds its chain's config and a pool, reports the pool's endpoint health and is cheap to
construct: HTTP connections are pooled per event loop, health records are process-wide. Each family
adds its own ``accepts`` (which transaction ids it takes) and ``trace``. :class:`Findings` is what every
adapter, the EVM's decoder included, reads a transaction into.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chains.endpoints import EndpointHealth, EndpointPool, RestClient
from recovery.models import Transfer
from recovery.settings import ChainConfig


class PooledAdapter:
    """One chain talked to through ``pool`` (by default the config's endpoints and retry settings)."""

    def __init__(self, config: ChainConfig, *, pool: EndpointPool | None = None) -> None:
        self.config = config
        self.pool = pool or EndpointPool.from_config(config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.name!r})"

    def health(self) -> list[EndpointHealth]:
        return self.pool.health()


class RestAdapter(PooledAdapter):
    """A :class:`PooledAdapter` over a JSON REST API (Esplora, Tron's HTTP API); ``rest`` owns the pool."""

    def __init__(self, config: ChainConfig, *, rest: RestClient | None = None) -> None:
        self.rest = rest or RestClient.from_config(config)
        super().__init__(config, pool=self.rest.pool)


@dataclass
class Findings:
    """What a trace found in (part of) a transaction: its transfers, notes for a reader
    (``TraceResult.notes``), and the parts it could not read (``TraceResult.unread``). Every adapter reads
    into one.

    ``not_read`` is the one way to give up on a part of a transaction where value may have moved: the part
    goes to ``TraceResult.unread`` (the classifier sends the case to an engineer) and to the notes, so that
    nothing an adapter does not understand ever becomes a silent "no deposit".
    """

    transfers: list[Transfer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unread: list[str] = field(default_factory=list)

    def not_read(self, what: str, note: str | None = None) -> None:
        """``what``, in plain words, may have moved value and was not read; ``note`` is for an engineer
        (by default ``not read: <what>``)."""
        self.unread.append(what)
        self.notes.append(f"not read: {what}" if note is None else note)

    def extend(self, other: Findings) -> None:
        self.transfers += other.transfers
        self.notes += other.notes
        self.unread += other.unread
