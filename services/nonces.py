"""Nonce allocation: the next free nonce of a sending address, taken by storing the transaction signed
with it. The (chain, sender, nonce) unique key decides races; the signed transaction is stored before it
is ever broadcast, so a crash never leaves a sent transaction the engine does not know."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine

from chains.evm import EvmChain
from chains.signer import Signer
from store import signed_txs
from store.db import run_in_session
from store.signed_txs import NonceTaken, SignedTransaction, SignedTxExists

MAX_ATTEMPTS = 20


class NonceAllocator:
    """Within this process a lock per sender queues the allocations (every top-up comes from one gas
    wallet); across workers they race on the unique key and the loser takes the next nonce."""

    def __init__(self, *, engine: Engine, signer: Signer) -> None:
        self._engine = engine
        self._signer = signer
        self._locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def sign_and_store(
        self,
        chain: EvmChain,
        *,
        idempotency_key: str,
        case_id: str,
        purpose: str,
        path: str,
        tx: dict[str, Any],
    ) -> SignedTransaction:
        """Sign ``tx`` from ``path`` with the next free nonce and store it under ``idempotency_key``; the
        transaction an earlier attempt stored under that key when there is one."""
        name = chain.config.name
        sender = self._signer.address(path)
        async with self._locks[(name, sender.lower())]:
            for _attempt in range(MAX_ATTEMPTS):
                chain_nonce = await chain.nonce(sender)
                stored_max = await run_in_session(self._engine, signed_txs.max_nonce, chain=name, from_address=sender)
                nonce = max(chain_nonce, -1 if stored_max is None else stored_max + 1)
                raw, tx_hash = self._signer.sign_evm(path, tx | {"nonce": nonce})
                try:
                    return await run_in_session(
                        self._engine,
                        signed_txs.save_signed_tx,
                        idempotency_key=idempotency_key,
                        case_id=case_id,
                        chain=name,
                        purpose=purpose,
                        from_address=sender,
                        nonce=nonce,
                        tx_hash=tx_hash,
                        raw_tx=raw.hex(),
                        gas_limit=tx["gas"],
                        max_fee_per_gas=tx["maxFeePerGas"],
                        value=tx["value"],
                    )
                except NonceTaken:
                    continue
                except SignedTxExists as exc:
                    return exc.existing
        raise NonceExhausted(f"could not allocate a nonce for {sender} on {name}")


class NonceExhausted(Exception):
    """Every attempt lost its nonce to another writer: retry later (not permanent)."""
