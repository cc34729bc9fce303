"""The EVM chains the engine signs and sends on, by configured name: one client per chain, reused."""

from __future__ import annotations

from chains.evm import EvmChain
from recovery.settings import ChainConfig, Settings


class EvmChains:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._chains = {c.name: EvmChain.from_config(c) for c in settings.chains if c.family == "evm"}

    def config(self, name: str) -> ChainConfig:
        """Any configured chain; :class:`~recovery.settings.UnknownChain` otherwise."""
        return self.settings.require_chain(name)

    def get(self, name: str) -> EvmChain:
        """The client of an EVM chain; :class:`~recovery.settings.UnknownChain` for any other name."""
        self.settings.require_chain(name, family="evm", doing="signed on")
        return self._chains[name]

    def all(self) -> list[EvmChain]:
        return list(self._chains.values())
