"""Broadcasting stored signed transactions (the same bytes every time: idempotent) and reading their
receipts with the confirmations they have."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from recovery.errors import PermanentError
from recovery.models import TxReceipt
from services.evm_chains import EvmChains
from store import signed_txs
from store.db import run_in_session

RECEIPT_POLL = timedelta(seconds=5)


class NotSigned(PermanentError):
    pass


class Broadcaster:
    def __init__(self, *, engine: Engine, chains: EvmChains) -> None:
        self._engine = engine
        self._chains = chains

    async def broadcast(self, idempotency_key: str, *, on_wait: Callable[[str], Any]) -> TxReceipt:
        """Send the transaction stored under ``idempotency_key`` unless the chain has it, then wait until
        it is mined; ``on_wait(tx_hash)`` is called every few seconds meanwhile (heartbeats)."""
        row = await run_in_session(self._engine, signed_txs.get_signed_tx, idempotency_key=idempotency_key)
        if row is None:
            raise NotSigned(f"no signed transaction under {idempotency_key}")
        chain = self._chains.get(row.chain)
        if await chain.receipt(row.tx_hash) is None:
            await chain.send_raw(bytes.fromhex(row.raw_tx.removeprefix("0x")), row.tx_hash)
        while True:
            on_wait(row.tx_hash)
            try:
                receipt = await chain.wait_receipt(row.tx_hash, timeout=RECEIPT_POLL)
            except TimeoutError:
                continue
            return await self._receipt(row.chain, row.tx_hash, receipt)

    async def status(self, chain_name: str, tx_hash: str) -> TxReceipt:
        """The receipt of a mined transaction; ``LookupError`` (retried) while it has none."""
        receipt = await self._chains.get(chain_name).receipt(tx_hash)
        if receipt is None:
            raise LookupError(f"{tx_hash} has no receipt on {chain_name} (dropped or reorged)")
        return await self._receipt(chain_name, tx_hash, receipt)

    async def _receipt(self, chain_name: str, tx_hash: str, receipt: dict[str, Any]) -> TxReceipt:
        head = await self._chains.get(chain_name).block_number()
        block = _int(receipt["blockNumber"])
        return TxReceipt(
            chain=chain_name,
            tx_hash=tx_hash,
            succeeded=_int(receipt["status"]) == 1,
            block_number=block,
            gas_used=_int(receipt["gasUsed"]),
            effective_gas_price=_int(receipt["effectiveGasPrice"]),
            confirmations=max(head - block + 1, 0),
            required_confirmations=self._chains.config(chain_name).confirmations,
        )


def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)
