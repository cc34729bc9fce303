"""Activities of the case workflow: every side effect (chains, signer, database) happens here.

Each activity is idempotent: a retry after a crash at any line finds what the first attempt stored
(signed transactions, ledger rows, timeline events by key) instead of doing it again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from chains.evm import EvmChain, build_erc20_transfer_data
from chains.jsonrpc import JsonRpcClient
from chains.registry import adapter_for, locate
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer, deposit_path
from chains.token_safety import assess_token, token_metadata
from fees import ledger
from fees.policy import native_to_asset_units, quote, settle
from fees.prices import PricePort
from recovery import store
from recovery.models import (
    CaseUpdate,
    DepositFacts,
    FactsRequest,
    Quote,
    QuoteRequest,
    Settlement,
    SettleRequest,
    SignedTx,
    SignRequest,
    TraceRequest,
    TraceResult,
    Transfer,
    TxReceipt,
    TxStatusRequest,
)
from recovery.settings import ChainConfig, Settings

log = logging.getLogger(__name__)

SWEEP_GAS_FALLBACK = 100_000
NATIVE_TRANSFER_GAS = 21_000
GAS_HEADROOM_PCT = 120


class CaseActivities:
    def __init__(self, *, settings: Settings, engine: Engine, signer: Signer, prices: PricePort) -> None:
        self._settings = settings
        self._engine = engine
        self._signer = signer
        self._prices = prices
        self._chains = {
            c.name: EvmChain(c, rpc=JsonRpcClient.from_config(c)) for c in settings.chains if c.family == "evm"
        }
        self._nonce_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    def all(self) -> list[Any]:
        return [
            self.trace_transaction,
            self.gather_facts,
            self.quote_recovery,
            self.sign_transaction,
            self.broadcast_transaction,
            self.transaction_status,
            self.settle_case,
            self.save_case,
        ]

    def _chain(self, name: str) -> EvmChain:
        try:
            return self._chains[name]
        except KeyError:
            raise ApplicationError(f"chain {name!r} is not configured", non_retryable=True) from None

    def _config(self, name: str) -> ChainConfig:
        try:
            return self._settings.chain(name)
        except KeyError:
            raise ApplicationError(f"chain {name!r} is not configured", non_retryable=True) from None

    async def _db(self, fn: Any, /, **kwargs: Any) -> Any:
        def run() -> Any:
            with Session(self._engine, expire_on_commit=False) as session:
                return fn(session, **kwargs)

        return await asyncio.to_thread(run)

    # --- tracing and facts --------------------------------------------------------------------

    @activity.defn(name="trace_transaction")
    async def trace_transaction(self, request: TraceRequest) -> TraceResult:
        if request.chain is None:
            return await locate(self._settings.chains, request.tx_hash)
        return await adapter_for(self._config(request.chain)).trace(request.tx_hash)

    @activity.defn(name="gather_facts")
    async def gather_facts(self, request: FactsRequest) -> DepositFacts:
        trace = request.trace
        facts = DepositFacts(
            claimant_user_id=request.user_id,
            trace=trace,
            engineers=list(self._settings.engineers),
            vanished_from_block=request.vanished_from_block,
        )
        if trace.chain is None:
            return facts
        config = self._config(trace.chain)
        facts.family = config.family
        deposit = _pick_deposit(config, trace, request.log_index)
        if request.log_index is None:
            # the claim resolved to no transfer of the claimant's (e.g. an internal transfer the API's trace
            # could not read): look again now, the ledger is keyed by deposit so this never credits twice
            deposit = await self._claimants_transfer(trace, request.user_id) or deposit
        if deposit is None:
            return facts
        facts.deposit = deposit
        facts.internal_transfer = deposit.sender.lower() in {
            self._signer.address(HOT_WALLET_PATH).lower(),
            self._signer.address(GAS_WALLET_PATH).lower(),
        }
        if _is_token_contract(config, deposit):
            facts.recipient_token_contract = True
            facts.rescue_route = {a.lower(): r for a, r in config.rescue_routes.items()}.get(deposit.recipient.lower())
            return facts
        facts.shared_address = _same_address(deposit.recipient, config.shared_deposit_address)
        facts.fork_of = config.fork_of
        owner = await self._db(
            store.address_owner, address=deposit.recipient, memo=deposit.memo if facts.shared_address else None
        )
        if owner is None:
            return facts
        facts.owner_user_id = owner.user_id
        if facts.shared_address:
            facts.memo_owner_user_id = owner.user_id
        facts.deprecated_address = owner.deprecated
        facts.signer_holds_key = owner.deposit_index is not None and _same_address(
            self._signer.address(deposit_path(owner.deposit_index)), deposit.recipient
        )
        if config.family == "evm":
            facts.contract_on_chains = await self._chains_with_code(deposit.recipient, trace.chain)
            facts.recipient_is_contract = trace.chain in facts.contract_on_chains
        facts.already_credited = await self._db(ledger.is_credited, deposit_key=deposit.key)
        if deposit.asset is not None:
            facts.credited_here = deposit.asset in config.credited_assets
            facts.credited_chains = [
                c.name
                for c in self._settings.chains
                if c.name != trace.chain and c.family == config.family and deposit.asset in c.credited_assets
            ]
            facts.minimum = config.deposit_minimums.get(deposit.asset)
            if facts.minimum is not None and deposit.amount < facts.minimum and config.family == "evm":
                facts.uncredited_total = await self._balance_of(deposit)
        elif config.family == "evm" and deposit.token_address is not None:
            await self._assess_unlisted_token(facts, deposit)
        return facts

    async def _chains_with_code(self, address: str, deposit_chain: str) -> list[str]:
        """EVM chains where ``address`` has code. Only the deposit chain must answer: another chain being
        down leaves it out (it only words the reason of a contract-wallet case) rather than stalling every case."""
        evm = [c for c in self._settings.chains if c.family == "evm"]
        answers = await asyncio.gather(*(self._chain(c.name).is_contract(address) for c in evm), return_exceptions=True)
        out: list[str] = []
        for config, answer in zip(evm, answers, strict=True):
            if isinstance(answer, BaseException):
                if config.name == deposit_chain or not isinstance(answer, Exception):
                    raise answer
                log.warning("code at %s on %s unknown (%s); left out", address, config.name, answer)
            elif answer:
                out.append(config.name)
        return out

    async def _claimants_transfer(self, trace: TraceResult, user_id: str) -> Transfer | None:
        for transfer in sorted(trace.transfers, key=lambda t: t.log_index):
            owner = await self._db(store.address_owner, address=transfer.recipient)
            if owner is not None and owner.user_id == user_id:
                return transfer
        return None

    async def _balance_of(self, deposit: Transfer) -> int:
        chain = self._chain(deposit.chain)
        if deposit.token_address is None:
            return await chain.balance(deposit.recipient)
        return await chain.token_balance(deposit.token_address, deposit.recipient)

    async def _assess_unlisted_token(self, facts: DepositFacts, deposit: Transfer) -> None:
        """Symbol, decimals, price and the risky-token checks of a token the exchange does not list."""
        token = deposit.token_address
        assert token is not None and facts.trace.block_number is not None
        chain = self._chain(deposit.chain)
        symbol, decimals = await token_metadata(chain, token)
        facts.token_symbol = symbol
        if decimals is not None:
            deposit = deposit.model_copy(update={"decimals": decimals})
            facts.deposit = deposit
        facts.token_findings = await assess_token(
            chain,
            token=token,
            holder=deposit.recipient,
            amount=deposit.amount,
            to=self._signer.address(HOT_WALLET_PATH),
            deposit_block=facts.trace.block_number,
        )
        price = self._prices.usd_price(asset_key(deposit))
        facts.priced = decimals is not None and price is not None and price > 0

    # --- fee ----------------------------------------------------------------------------------

    @activity.defn(name="quote_recovery")
    async def quote_recovery(self, request: QuoteRequest) -> Quote:
        deposit = request.deposit
        config = self._config(deposit.chain)
        asset, decimals = _asset_of(deposit)
        price = self._price(asset)
        gas_estimate = 0
        if request.on_chain:
            chain = self._chain(deposit.chain)
            max_fee, _tip = await chain.fee_params()
            sweep_gas = await self._sweep_gas_limit(chain, deposit)
            gas_native = (sweep_gas + NATIVE_TRANSFER_GAS) * max_fee
            gas_estimate = native_to_asset_units(
                gas_native,
                native_decimals=config.native_decimals,
                native_price_usd=self._price(config.native_symbol),
                decimals=decimals,
                price_usd=price,
            )
        policy = self._settings.fee
        return quote(
            asset=asset,
            amount=deposit.amount,
            decimals=decimals,
            price_usd=price,
            percent_bps=policy.percent_bps,
            min_usd=policy.min_usd,
            max_usd=policy.max_usd,
            gas_estimate=gas_estimate,
        )

    def _price(self, asset: str) -> Decimal:
        price = self._prices.usd_price(asset)
        if price is None or price <= 0:
            raise ApplicationError(f"no USD price configured for {asset}", non_retryable=True)
        return price

    async def _sweep_gas_limit(self, chain: EvmChain, deposit: Transfer) -> int:
        if deposit.native:
            return NATIVE_TRANSFER_GAS
        assert deposit.token_address is not None
        hot = self._signer.address(HOT_WALLET_PATH)
        try:
            estimate = await chain.estimate_gas(
                {
                    "from": deposit.recipient,
                    "to": deposit.token_address,
                    "data": build_erc20_transfer_data(hot, deposit.amount),
                }
            )
        except Exception as exc:  # noqa: BLE001 - an estimate is advisory; the fallback is safe
            log.warning("gas estimate failed on %s: %s; using %d", deposit.chain, exc, SWEEP_GAS_FALLBACK)
            return SWEEP_GAS_FALLBACK
        return estimate * GAS_HEADROOM_PCT // 100

    # --- signing and broadcasting --------------------------------------------------------------

    @activity.defn(name="sign_transaction")
    async def sign_transaction(self, request: SignRequest) -> SignedTx:
        """Sign at most once per idempotency key; the signed transaction is stored before any broadcast."""
        deposit = request.deposit
        stored = await self._db(store.get_signed_tx, idempotency_key=request.idempotency_key)
        if stored is not None:
            return SignedTx(idempotency_key=request.idempotency_key, chain=stored.chain, tx_hash=stored.tx_hash)
        chain = self._chain(deposit.chain)
        config = self._config(deposit.chain)
        owner = await self._db(store.address_owner, address=deposit.recipient)
        if owner is None or owner.deposit_index is None:
            raise ApplicationError(f"the engine holds no key for {deposit.recipient}", non_retryable=True)
        if request.purpose == "sweep":
            path = deposit_path(owner.deposit_index)
            max_fee, tip = await chain.fee_params()
            tx = self._sweep_tx(deposit, await self._sweep_gas_limit(chain, deposit), max_fee, tip)
        elif request.purpose == "gas_topup":
            if request.sweep_key is None:
                raise ApplicationError("a gas top-up needs the signed sweep it pays for", non_retryable=True)
            sweep = await self._db(store.get_signed_tx, idempotency_key=request.sweep_key)
            if sweep is None:
                raise ApplicationError("the sweep must be signed before its gas top-up", non_retryable=True)
            # every transaction signed from this address and not yet mined will spend from its balance,
            # not only this sweep (two deposits to one address can be recovered at once)
            pending = await self._db(
                store.signed_from,
                chain=deposit.chain,
                from_address=deposit.recipient,
                min_nonce=await chain.nonce(deposit.recipient, block="latest"),
            )
            needed = sum(tx.gas_limit * tx.max_fee_per_gas + tx.value for tx in pending)
            have = await chain.balance(deposit.recipient)
            if have >= needed:
                return SignedTx(idempotency_key=request.idempotency_key, chain=deposit.chain, tx_hash=None)
            path = GAS_WALLET_PATH
            max_fee, tip = await chain.fee_params()
            tx = {
                "to": deposit.recipient,
                "value": needed - have,
                "gas": NATIVE_TRANSFER_GAS,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
        else:
            raise ApplicationError(f"unknown purpose {request.purpose!r}", non_retryable=True)
        sender = self._signer.address(path)
        tx |= {"chainId": config.chain_id, "type": 2}
        row = await self._store_signed(request, chain, path, sender, tx)
        log.info("signed %s for %s: %s (nonce %d)", request.purpose, request.case_id, row.tx_hash, row.nonce)
        return SignedTx(idempotency_key=request.idempotency_key, chain=deposit.chain, tx_hash=row.tx_hash)

    def _sweep_tx(self, deposit: Transfer, gas: int, max_fee: int, tip: int) -> dict[str, Any]:
        hot = self._signer.address(HOT_WALLET_PATH)
        common = {"gas": gas, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
        if deposit.native:
            return {"to": hot, "value": deposit.amount - gas * max_fee, **common}
        assert deposit.token_address is not None
        return {
            "to": deposit.token_address,
            "value": 0,
            "data": build_erc20_transfer_data(hot, deposit.amount),
            **common,
        }

    async def _store_signed(
        self, request: SignRequest, chain: EvmChain, path: str, sender: str, tx: dict[str, Any]
    ) -> store.SignedTransaction:
        """Pick the next free nonce for ``sender`` and store the signed transaction under it.

        Within this worker a lock per sender queues the allocations (all top-ups come from one gas
        wallet); across workers they race on the (chain, sender, nonce) unique key and the loser takes
        the next nonce.
        """
        async with self._nonce_locks[(request.deposit.chain, sender.lower())]:
            return await self._allocate_and_store(request, chain, path, sender, tx)

    async def _allocate_and_store(
        self, request: SignRequest, chain: EvmChain, path: str, sender: str, tx: dict[str, Any]
    ) -> store.SignedTransaction:
        for _attempt in range(20):
            chain_nonce = await chain.nonce(sender)
            stored_max = await self._db(store.max_nonce, chain=request.deposit.chain, from_address=sender)
            nonce = max(chain_nonce, -1 if stored_max is None else stored_max + 1)
            raw, tx_hash = self._signer.sign_evm(path, tx | {"nonce": nonce})
            try:
                return await self._db(
                    store.save_signed_tx,
                    idempotency_key=request.idempotency_key,
                    case_id=request.case_id,
                    chain=request.deposit.chain,
                    purpose=request.purpose,
                    from_address=sender,
                    nonce=nonce,
                    tx_hash=tx_hash,
                    raw_tx=raw.hex(),
                    gas_limit=tx["gas"],
                    max_fee_per_gas=tx["maxFeePerGas"],
                    value=tx["value"],
                )
            except store.NonceTaken:
                continue
            except store.SignedTxExists:
                existing = await self._db(store.get_signed_tx, idempotency_key=request.idempotency_key)
                assert existing is not None
                return existing
        raise ApplicationError(f"could not allocate a nonce for {sender} on {request.deposit.chain}")

    @activity.defn(name="broadcast_transaction")
    async def broadcast_transaction(self, signed: SignedTx) -> TxReceipt:
        """Broadcast the stored signed transaction (idempotent) and wait until it is mined."""
        assert signed.tx_hash is not None
        row = await self._db(store.get_signed_tx, idempotency_key=signed.idempotency_key)
        if row is None:
            raise ApplicationError(f"no signed transaction under {signed.idempotency_key}", non_retryable=True)
        chain = self._chain(row.chain)
        if await chain.receipt(row.tx_hash) is None:
            await chain.send_raw(bytes.fromhex(row.raw_tx.removeprefix("0x")), row.tx_hash)
        while True:
            activity.heartbeat(row.tx_hash)
            try:
                receipt = await chain.wait_receipt(row.tx_hash, timeout=timedelta(seconds=5))
            except TimeoutError:
                continue
            return await self._receipt(row.chain, row.tx_hash, receipt)

    @activity.defn(name="transaction_status")
    async def transaction_status(self, request: TxStatusRequest) -> TxReceipt:
        """Kept for cases started before the workflow's REBROADCAST_WHILE_CONFIRMING patch."""
        receipt = await self._chain(request.chain).receipt(request.tx_hash)
        if receipt is None:
            raise ApplicationError(f"{request.tx_hash} has no receipt on {request.chain} (dropped or reorged)")
        return await self._receipt(request.chain, request.tx_hash, receipt)

    async def _receipt(self, chain_name: str, tx_hash: str, receipt: dict[str, Any]) -> TxReceipt:
        head = await self._chain(chain_name).block_number()
        block = _int(receipt["blockNumber"])
        return TxReceipt(
            chain=chain_name,
            tx_hash=tx_hash,
            succeeded=_int(receipt["status"]) == 1,
            block_number=block,
            gas_used=_int(receipt["gasUsed"]),
            effective_gas_price=_int(receipt["effectiveGasPrice"]),
            confirmations=max(head - block + 1, 0),
            required_confirmations=self._config(chain_name).confirmations,
        )

    # --- settlement and the case record --------------------------------------------------------

    @activity.defn(name="settle_case")
    async def settle_case(self, request: SettleRequest) -> Settlement:
        deposit = request.deposit
        if not all(r.succeeded for r in request.receipts):
            raise ApplicationError("refusing to credit: a recovery transaction reverted", non_retryable=True)
        config = self._config(deposit.chain)
        asset, decimals = _asset_of(deposit)
        gas_native = sum(r.gas_used * r.effective_gas_price for r in request.receipts)
        gas = 0
        if gas_native:  # a credit of funds already held needs no transaction, and no native price
            gas = native_to_asset_units(
                gas_native,
                native_decimals=config.native_decimals,
                native_price_usd=self._price(config.native_symbol),
                decimals=decimals,
                price_usd=self._price(asset),
            )
        settlement = settle(recovered=deposit.amount, fee=request.quote.fee, gas=gas, gas_native=gas_native)
        booked = await self._db(
            ledger.settle_case,
            case_id=request.case_id,
            user_id=request.user_id,
            deposit_key=deposit.key,
            chain=deposit.chain,
            asset=asset,
            settlement=settlement,
            fee_usd=request.quote.fee_usd,
        )
        if not booked:  # settled by an earlier attempt: report what the ledger holds, not a recomputation
            settlement = await self._db(ledger.booked_settlement, deposit_key=deposit.key, gas_native=gas_native)
        log.info(
            "case %s settled: recovered %d = credited %d + fee %d + gas %d (%s base units)",
            request.case_id,
            settlement.recovered,
            settlement.credited,
            settlement.fee,
            settlement.gas,
            asset,
        )
        return settlement

    @activity.defn(name="save_case")
    async def save_case(self, update: CaseUpdate) -> None:
        await self._db(store.apply_case_update, update=update)


def asset_key(deposit: Transfer) -> str:
    """The deposit's asset in prices and the ledger: its listed symbol, else ``<chain>:<token address>``
    (an unlisted token's own symbol proves nothing: anyone can deploy a token called USDT)."""
    if deposit.asset is not None:
        return deposit.asset
    return f"{deposit.chain}:{(deposit.token_address or 'native').lower()}"


def _asset_of(deposit: Transfer) -> tuple[str, int]:
    if deposit.decimals is None:
        raise ApplicationError(f"token {deposit.token_address} has no known decimals: no fee", non_retryable=True)
    return asset_key(deposit), deposit.decimals


def _same_address(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return a.lower() == b.lower() if a.startswith("0x") else a == b


def _is_token_contract(config: ChainConfig, deposit: Transfer) -> bool:
    """Sent to the token's own contract, or to a listed token's contract."""
    if deposit.token_address is not None and _same_address(deposit.token_address, deposit.recipient):
        return True
    return any(_same_address(t.address, deposit.recipient) for t in config.tokens)


def _pick_deposit(config: ChainConfig, trace: TraceResult, log_index: int | None) -> Transfer | None:
    """The claimed transfer; for a claim that matched none of our addresses, a transfer whose recovery is
    still possible to discuss: to our shared address or to a token contract."""
    if log_index is not None:
        return trace.transfer_at(log_index)
    for transfer in trace.transfers:
        if _same_address(transfer.recipient, config.shared_deposit_address) or _is_token_contract(config, transfer):
            return transfer
    return None


def _int(value: str | int) -> int:
    return value if isinstance(value, int) else int(value, 16)
