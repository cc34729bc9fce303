"""One adapter per configured chain, whatever its family, and ``locate``: find a transaction anywhere.

Every adapter raises ``RpcUnavailable`` when none of its endpoints answers, and an ``RpcError`` (or a
subclass: ``RestError``, ``XrplError``) when a node answers with an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Protocol

from chains import bitcoin, evm, tron, xrpl
from chains.bitcoin import BitcoinChain
from chains.endpoints import RpcError, RpcUnavailable
from chains.evm import EvmChain
from chains.tron import TronChain
from chains.xrpl import XrplChain
from recovery.i18n import N_, Message, separated
from recovery.models import TraceResult
from recovery.settings import ChainConfig, ChainFamily

FORMATS: dict[ChainFamily, str] = {
    "evm": N_("0x + 64 hex digits"),
    "bitcoin": bitcoin.TXID_FORMAT,
    "tron": tron.TXID_FORMAT,
    "xrpl": xrpl.TX_HASH_FORMAT,
}
"""What a transaction id looks like in each family (for error messages): message ids."""

PATTERNS: dict[ChainFamily, str] = {
    "evm": evm.TX_HASH_RE.pattern,
    "bitcoin": bitcoin.TXID_RE.pattern,
    "tron": tron.TXID_RE.pattern,
    "xrpl": xrpl.TX_HASH_RE.pattern,
}
"""The same as regular expressions (for the API's schema)."""


def tx_hash_pattern(configs: Iterable[ChainConfig]) -> str:
    """One regular expression matching a transaction id of any configured chain family."""
    patterns = sorted({PATTERNS[c.family].removeprefix("^").removesuffix("$") for c in configs})
    return "^(" + "|".join(patterns) + ")$" if patterns else "^$"


class ChainAdapter(Protocol):
    config: ChainConfig

    def accepts(self, tx_hash: str) -> bool:
        """Whether ``tx_hash`` is a well-formed transaction id in this chain's family."""
        ...

    async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        """``block_time``: also the block's timestamp (an extra call on some chains; otherwise it may be None)."""
        ...


def adapter_for(config: ChainConfig) -> ChainAdapter:
    match config.family:
        case "evm":
            return EvmChain.from_config(config)
        case "bitcoin":
            return BitcoinChain(config)
        case "tron":
            return TronChain(config)
        case "xrpl":
            return XrplChain(config)
    raise ValueError(f"chain {config.name!r}: no adapter for family {config.family!r}")


def adapters(configs: Iterable[ChainConfig]) -> dict[str, ChainAdapter]:
    return {c.name: adapter_for(c) for c in configs}


def accepted_formats(configs: Iterable[ChainConfig]) -> str:
    """``"evm (ethereum, bsc): 0x + 64 hex digits; xrpl (xrp): ..."`` for the configured families."""
    by_family: dict[ChainFamily, list[str]] = {}
    for c in configs:
        by_family.setdefault(c.family, []).append(c.name)
    return separated(
        [
            Message(
                "{family} ({chains}): {format}", family=family, chains=", ".join(names), format=Message(FORMATS[family])
            )
            for family, names in by_family.items()
        ]
    )


async def locate(
    configs: list[ChainConfig],
    tx_hash: str,
    *,
    make_adapter: Callable[[ChainConfig], ChainAdapter] = adapter_for,
) -> TraceResult:
    """Search, all at once, every chain whose family accepts ``tx_hash``; the first that knows it wins.

    The other searches are cancelled. Not found anywhere: a not-found result, unless some chain could
    not answer (``RpcUnavailable`` naming those chains); the not-found result carries ``chain=None``
    and the hash lowercased. ``ValueError`` if no configured chain accepts the format.
    """
    candidates = [a for a in (make_adapter(c) for c in configs) if a.accepts(tx_hash)]
    if not candidates:
        raise ValueError(
            Message(
                "{tx_hash} is not a transaction id on any configured chain; accepted: {formats}",
                tx_hash=repr(tx_hash),
                formats=accepted_formats(configs),
            )
        )
    tasks = {asyncio.create_task(a.trace(tx_hash), name=f"locate:{a.config.name}"): a for a in candidates}
    failures: list[str] = []
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    if not isinstance(exc, RpcError | RpcUnavailable):
                        raise exc
                    failures.append(f"{tasks[task].config.name} ({exc})")
                    continue
                result = task.result()
                if result.found:
                    return result
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if failures:
        raise RpcUnavailable(f"transaction {tx_hash} not found and chain(s) unreachable: " + "; ".join(failures))
    return TraceResult(chain=None, tx_hash=tx_hash.lower(), found=False)
