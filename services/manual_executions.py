"""Checking a recovery an engineer carried out outside the engine (a contract redeploy, an issuer's rescue,
a fork's keys, a non-EVM chain) on chain, before the case books it."""

from __future__ import annotations

from sqlalchemy import Engine

from chains.signer import HOT_WALLET_PATH, Signer
from recovery.choices import executed_transfer
from recovery.models import Transfer
from recovery.settings import Settings, UnknownChain
from services.tracing import Tracer
from store import manual_executions
from store.db import run_in_session


class ExecutionVerifier:
    def __init__(self, *, settings: Settings, engine: Engine, signer: Signer, tracer: Tracer) -> None:
        self._settings = settings
        self._engine = engine
        self._signer = signer
        self._tracer = tracer

    async def verify(
        self, *, case_id: str, deposit: Transfer, chain: str, tx_hash: str, engineer: str
    ) -> tuple[Transfer | None, str | None]:
        """The transfer that recovered ``deposit``, linked to this case once and for all, or what is wrong."""
        try:
            config = self._settings.require_chain(chain)
        except UnknownChain as err:
            return None, str(err)
        hot = self._signer.address(HOT_WALLET_PATH) if config.family == "evm" else config.hot_wallet
        if hot is None:
            return None, f"no hot wallet is configured for {chain} (chains[].hot_wallet): the engine cannot check it."
        trace = await self._tracer.trace(chain=chain, tx_hash=tx_hash)
        transfer, problem = executed_transfer(trace, deposit=deposit, hot_wallet=hot)
        if transfer is None:
            return None, problem
        holder = await run_in_session(
            self._engine,
            manual_executions.claim_transfer,
            case_id=case_id,
            chain=chain,
            tx_hash=transfer.tx_hash,
            log_index=transfer.log_index,
            amount=transfer.amount,
            engineer=engineer,
        )
        if holder != case_id:
            return None, f"transaction {tx_hash} cannot settle this case: it is already linked to {holder}."
        return transfer, None
