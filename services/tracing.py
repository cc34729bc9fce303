"""Tracing a transaction: on the chain a claim names, or found on any configured chain."""

from __future__ import annotations

from chains.registry import adapter_for, locate
from recovery.models import TraceResult
from recovery.settings import Settings


class Tracer:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def trace(self, *, chain: str | None, tx_hash: str) -> TraceResult:
        if chain is None:
            return await locate(self._settings.chains, tx_hash)
        return await adapter_for(self._settings.require_chain(chain)).trace(tx_hash)
