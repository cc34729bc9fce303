"""Signing a recovery's transactions once each: the sweep from the deposit address (or the refund to the
sender and the fee kept to the hot wallet), then the gas top-up sized for everything the address still has
to pay for."""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer, deposit_path
from recovery.errors import PermanentError
from recovery.models import SignedTx, Transfer
from services.evm_chains import EvmChains
from services.nonces import NonceAllocator
from services.transactions import sweep_gas_limit, sweep_tx, topup_needed, topup_tx, transfer_gas_limit, transfer_tx
from store import signed_txs, users
from store.db import run_in_session

log = logging.getLogger(__name__)

PURPOSES = ("sweep", "refund", "refund_fee", "gas_topup")


class CannotSign(PermanentError):
    pass


class TransactionSigner:
    def __init__(self, *, engine: Engine, signer: Signer, chains: EvmChains, nonces: NonceAllocator) -> None:
        self._engine = engine
        self._signer = signer
        self._chains = chains
        self._nonces = nonces

    async def sign(
        self,
        *,
        idempotency_key: str,
        case_id: str,
        purpose: str,
        deposit: Transfer,
        sweep_key: str | None,
        amount: int | None = None,
    ) -> SignedTx:
        """Sign at most once per idempotency key; the signed transaction is stored before any broadcast.
        A top-up the address does not need is not signed (``tx_hash`` None). A refund goes to the deposit's
        own sender only, and never more than the deposit."""
        stored = await run_in_session(self._engine, signed_txs.get_signed_tx, idempotency_key=idempotency_key)
        if stored is not None:
            return SignedTx(idempotency_key=idempotency_key, chain=stored.chain, tx_hash=stored.tx_hash)
        chain = self._chains.get(deposit.chain)
        config = self._chains.config(deposit.chain)
        owner = await run_in_session(self._engine, users.address_owner, address=deposit.recipient)
        if owner is None or owner.deposit_index is None:
            raise CannotSign(f"the engine holds no key for {deposit.recipient}")
        if purpose == "sweep":
            path = deposit_path(owner.deposit_index)
            hot = self._signer.address(HOT_WALLET_PATH)
            max_fee, tip = await chain.fee_params()
            gas = await sweep_gas_limit(chain, deposit, hot_wallet=hot)
            tx = sweep_tx(deposit, hot_wallet=hot, gas=gas, max_fee=max_fee, tip=tip)
        elif purpose in ("refund", "refund_fee"):
            if amount is None or not 0 < amount <= deposit.amount:
                raise CannotSign(f"a {purpose} moves between 1 and {deposit.amount} base units, not {amount}")
            path = deposit_path(owner.deposit_index)
            to = deposit.sender if purpose == "refund" else self._signer.address(HOT_WALLET_PATH)
            max_fee, tip = await chain.fee_params()
            gas = await transfer_gas_limit(chain, deposit, to=to, amount=amount)
            tx = transfer_tx(deposit, to=to, amount=amount, gas=gas, max_fee=max_fee, tip=tip)
        elif purpose == "gas_topup":
            if sweep_key is None:
                raise CannotSign("a gas top-up needs the signed transaction it pays for")
            if await run_in_session(self._engine, signed_txs.get_signed_tx, idempotency_key=sweep_key) is None:
                raise CannotSign("the transactions a gas top-up pays for must be signed before it")
            pending = await run_in_session(
                self._engine,
                signed_txs.signed_from,
                chain=deposit.chain,
                from_address=deposit.recipient,
                min_nonce=await chain.nonce(deposit.recipient, block="latest"),
            )
            missing = topup_needed(pending, await chain.balance(deposit.recipient))
            if missing == 0:
                return SignedTx(idempotency_key=idempotency_key, chain=deposit.chain, tx_hash=None)
            path = GAS_WALLET_PATH
            max_fee, tip = await chain.fee_params()
            tx = topup_tx(deposit.recipient, value=missing, max_fee=max_fee, tip=tip)
        else:
            raise CannotSign(f"unknown purpose {purpose!r}: use one of {', '.join(PURPOSES)}")
        tx |= {"chainId": config.chain_id, "type": 2}
        row = await self._nonces.sign_and_store(
            chain, idempotency_key=idempotency_key, case_id=case_id, purpose=purpose, path=path, tx=tx
        )
        log.info("signed %s for %s: %s (nonce %d)", purpose, case_id, row.tx_hash, row.nonce)
        return SignedTx(idempotency_key=idempotency_key, chain=deposit.chain, tx_hash=row.tx_hash)
