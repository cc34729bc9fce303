"""On-chain reconciliation of fees: for each COMPLETED case, what moved on chain equals what the ledger booked.

    recovered = credited (or refunded) + fee charged + gas charged

Checked per case, from the receipts and logs of the case's own transactions (``signed_transactions``):

- a sweep: its transfer of the deposit's asset from the deposit address to the hot wallet equals
  ``credited + charged + gas_charged`` (a native sweep pays its own gas: the transfer is short by the gas it
  reserved, ``gas_limit * max_fee_per_gas``, which the signed row records);
- a refund: the refund transfer to the sender equals the ``ledger_refunds`` amount, and the ``refund_fee``
  transfer to the hot wallet equals ``charged + gas_charged``;
- every mined recovery transaction (top-up, sweep, refund, refund fee): its receipt's ``gasUsed *
  effectiveGasPrice`` equals its one ``gas_spent`` row; no ``gas_spent`` row without a transaction of the case;
  a reverted transaction is a mismatch;
- a credit-only case (no transaction): the ledger's figures add up to the case's amount;
- a case recovered off-engine (``manual_executions``): the recorded transfer is on chain as recorded, to the hot
  wallet, and equals ``credited + charged + gas_charged``.

And per case the network-cost result: the gas charged to the user (in the deposit's asset) converted to the
native coin at the prices the ledger rows recorded (``price_usd``), against the gas the receipts say was spent.

The comparison (:func:`compare`, :func:`gas_charged_native`) is pure; :class:`Reconciler` reads the database and
the chains and writes a ``reconciliation_runs`` row and one ``case_reconciliation`` row per case. Integers in
base units throughout; ``Decimal`` only for the recorded prices and for display.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from chains.endpoints import RpcError
from chains.evm import normalize_tx_hash
from chains.evm_decode import hex_to_int, receipt_succeeded, transfers_of
from chains.signer import HOT_WALLET_PATH, Signer
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.settings import Settings, UnknownChain
from recovery.units import amount_text
from services.evm_chains import EvmChains
from services.tracing import Tracer
from store import fee_ledger
from store import reconciliation as results
from store.cases import Case
from store.db import run_in_session
from store.fee_ledger import FeeKind
from store.ledger import LedgerCredit, RefundEntry
from store.manual_executions import ManualExecution
from store.reconciliation import CaseReconciliation, ReconStatus
from store.signed_txs import SignedTransaction

log = logging.getLogger(__name__)

CONCURRENCY = 4
"""Cases read from the chains at once."""
RPC_BATCH_CALLS = 200
"""JSON-RPC calls per batch when reading a case's transactions (two per transaction)."""


# --------------------------------------------------------------------------------------------------
# What the books say (read from the database) and what the chain says (read from the nodes)


@dataclass(frozen=True)
class SignedRef:
    """One transaction the engine signed for the case."""

    purpose: str
    """``sweep``, ``gas_topup``, ``refund`` or ``refund_fee``."""
    tx_hash: str
    from_address: str
    gas_limit: int | None = None
    max_fee_per_gas: int | None = None


@dataclass(frozen=True)
class GasRow:
    """One ``gas_spent`` row of the fee ledger."""

    tx_hash: str | None
    amount: int
    gas_used: int | None = None
    gas_price: int | None = None
    price_usd: Decimal | None = None


@dataclass(frozen=True)
class RefundRef:
    amount: int
    to_address: str
    tx_hash: str


@dataclass(frozen=True)
class ManualRef:
    """A recovery an engineer carried out outside the engine, as recorded."""

    chain: str
    tx_hash: str
    log_index: int
    amount: int


@dataclass(frozen=True)
class CaseBooks:
    """Everything the database holds about a completed case's money, in base units."""

    case_id: str
    chain: str
    asset: str
    """The deposit's asset, for display (its symbol, or its token address when unlisted)."""
    token_address: str | None
    """None for the chain's native coin."""
    decimals: int | None
    amount: int | None
    """The deposit's amount (the case's)."""
    native_symbol: str
    native_decimals: int
    credits: tuple[int, ...] = ()
    refunds: tuple[RefundRef, ...] = ()
    charged: int | None = None
    """The ``charged`` row (None: none booked)."""
    gas_charged: int | None = None
    """The sum of the ``gas_charged`` rows (None: none booked)."""
    recovered: int | None = None
    """The ``recovered`` row (None: none booked, as for cases settled before it was)."""
    asset_price_usd: Decimal | None = None
    """USD per whole unit of the asset, as the ``gas_charged`` (or ``charged``) row recorded it."""
    gas_spent: tuple[GasRow, ...] = ()
    signed: tuple[SignedRef, ...] = ()
    manual: ManualRef | None = None

    @property
    def native(self) -> bool:
        return self.token_address is None


@dataclass(frozen=True)
class ChainTx:
    """One transaction as its receipt and its transfers say (``mined`` False: no receipt)."""

    tx_hash: str
    mined: bool
    succeeded: bool = False
    gas_used: int = 0
    gas_price: int = 0
    """The receipt's ``effectiveGasPrice``."""
    transfers: tuple[Transfer, ...] = ()

    @property
    def gas_paid(self) -> int:
        return self.gas_used * self.gas_price


@dataclass(frozen=True)
class ChainView:
    """What the chain said about a case's transactions (keyed by lower-case hash), or why it was not read."""

    txs: Mapping[str, ChainTx] = field(default_factory=dict)
    manual: TraceResult | None = None
    error: str | None = None


@dataclass(frozen=True)
class Finding:
    status: ReconStatus
    problems: tuple[str, ...]
    """Figures that disagree (a mismatch)."""
    unknowns: tuple[str, ...]
    """What could not be read (uncheckable, when nothing disagrees)."""
    checked: tuple[str, ...]
    """What agreed, in words."""
    gas_charged_native: int | None
    gas_spent_native: int | None

    def detail(self, books: CaseBooks) -> str:
        parts = list(self.problems or self.unknowns or self.checked)
        if self.problems and self.unknowns:
            parts += self.unknowns
        parts.append(network_cost_text(books, self.gas_charged_native, self.gas_spent_native))
        return "; ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------------
# The comparison (pure)


def gas_charged_native(
    gas_charged: int,
    *,
    decimals: int | None,
    price_usd: Decimal | None,
    native_decimals: int,
    native_price_usd: Decimal | None,
) -> int | None:
    """The gas charged in the deposit's asset, in base units of the native coin at the recorded prices
    (rounded down); None when a price or the decimals are not known. Exact: prices are read as fractions."""
    if gas_charged == 0:
        return 0
    if decimals is None or price_usd is None or native_price_usd is None or native_price_usd <= 0:
        return None
    value = Fraction(gas_charged) * Fraction(price_usd) * 10**native_decimals
    return int(value / (Fraction(native_price_usd) * 10**decimals))


def network_cost_text(books: CaseBooks, charged: int | None, spent: int | None) -> str:
    if charged is None and spent is None:
        return ""

    def native(n: int | None) -> str:
        return "unknown" if n is None else amount_text(n, books.native_decimals, books.native_symbol)

    text = f"network cost: charged {native(charged)}, spent {native(spent)}"
    if charged is not None and spent is not None:
        text += f" (charged - spent = {charged - spent:+d} base units)"
    return text


def _short(tx_hash: str) -> str:
    return tx_hash if len(tx_hash) < 14 else f"{tx_hash[:10]}…{tx_hash[-4:]}"


def _moved(tx: ChainTx, books: CaseBooks, *, sender: str, recipient: str) -> int:
    """The deposit's asset ``tx`` moved from ``sender`` to ``recipient`` (base units)."""
    total = 0
    for t in tx.transfers:
        if t.sender.lower() != sender.lower() or t.recipient.lower() != recipient.lower():
            continue
        if books.native:
            if t.token_address is None and t.log_index == NATIVE_LOG_INDEX:
                total += t.amount
        elif t.token_address is not None and t.token_address.lower() == (books.token_address or "").lower():
            total += t.amount
    return total


class _Check:
    def __init__(self, books: CaseBooks) -> None:
        self.books = books
        self.problems: list[str] = []
        self.unknowns: list[str] = []
        self.checked: list[str] = []

    def units(self, amount: int) -> str:
        return amount_text(amount, self.books.decimals, self.books.asset)

    def native(self, amount: int) -> str:
        return amount_text(amount, self.books.native_decimals, self.books.native_symbol)

    def off(self, chain: int, booked: int) -> str:
        """How far the chain is from the books, in base units."""
        return f"off by {chain - booked:+d} base units"

    def unknown(self, text: str) -> None:
        if text not in self.unknowns:
            self.unknowns.append(text)


def compare(books: CaseBooks, view: ChainView, *, hot_wallet: str | None) -> Finding:
    """Check one completed case's books against what its chain said. Pure."""
    c = _Check(books)
    credited, refunded = sum(books.credits), sum(r.amount for r in books.refunds)
    charged, gas = books.charged or 0, books.gas_charged or 0
    if books.charged is None:
        c.problems.append("the fee ledger has no `charged` row for this completed case")
    if books.gas_charged is None:
        c.problems.append("the fee ledger has no `gas_charged` row for this completed case")
    parts = credited + refunded + charged + gas
    if books.recovered is not None and books.recovered != parts:
        c.problems.append(
            f"the fee ledger's `recovered` row says {books.recovered} base units, its parts (credited {credited} + "
            f"refunded {refunded} + fee {charged} + gas {gas}) add to {parts}: {c.off(parts, books.recovered)}"
        )
    if len(books.credits) + len(books.refunds) != 1:
        c.problems.append(
            f"a completed case has one credit or one refund; the ledger has {len(books.credits)} credit(s) and "
            f"{len(books.refunds)} refund(s)"
        )
    if view.error is not None:
        c.unknown(f"{books.chain} not read: {view.error}")

    sweeps = [s for s in books.signed if s.purpose == "sweep"]
    refund_txs = [s for s in books.signed if s.purpose in ("refund", "refund_fee")]
    if books.manual is not None:
        _check_manual(c, view, hot_wallet=hot_wallet, credited=credited, charged=charged, gas=gas)
    elif books.refunds or refund_txs:
        _check_refund(c, view, hot_wallet=hot_wallet, charged=charged, gas=gas)
    elif sweeps:
        _check_sweep(c, view, sweeps, hot_wallet=hot_wallet, credited=credited, charged=charged, gas=gas)
    elif not books.signed and gas:
        c.problems.append(f"gas charged {c.units(gas)} ({gas} base units) but the case has no transaction")
    if books.manual is None:
        # the ledger against the deposit (an off-engine recovery books the amount it moved instead)
        booked = credited + refunded + charged + gas
        if books.amount is None:
            c.problems.append("the case records no deposit amount to check the ledger against")
        elif booked != books.amount:
            c.problems.append(
                f"the ledger books credited {credited} + refunded {refunded} + fee {charged} + gas {gas} = {booked} "
                f"base units, the deposit is {books.amount}: {c.off(books.amount, booked)} ({books.asset})"
            )
        elif not books.signed:
            c.checked.append(
                f"credit only: credited {c.units(credited)} + fee {c.units(charged)} + gas {c.units(gas)} "
                f"= the deposit {c.units(books.amount)}"
            )
    spent = _check_gas(c, view)
    native_price = next((r.price_usd for r in books.gas_spent if r.price_usd is not None), None)
    charged_native = gas_charged_native(
        gas,
        decimals=books.decimals,
        price_usd=books.asset_price_usd,
        native_decimals=books.native_decimals,
        native_price_usd=native_price,
    )
    status = ReconStatus.MISMATCH if c.problems else ReconStatus.UNCHECKABLE if c.unknowns else ReconStatus.OK
    return Finding(
        status=status,
        problems=tuple(c.problems),
        unknowns=tuple(c.unknowns),
        checked=tuple(c.checked),
        gas_charged_native=charged_native,
        gas_spent_native=spent,
    )


def _mined(c: _Check, view: ChainView, signed: SignedRef) -> ChainTx | None:
    """The transaction's receipt if it is mined and succeeded (else noted: unknown or a mismatch)."""
    if view.error is not None:
        return None
    tx = view.txs.get(signed.tx_hash.lower())
    if tx is None or not tx.mined:
        c.unknown(f"no receipt for the {signed.purpose} {signed.tx_hash} on {c.books.chain}")
        return None
    if not tx.succeeded:
        message = f"the {signed.purpose} {signed.tx_hash} reverted on {c.books.chain}"
        if message not in c.problems:
            c.problems.append(message)
        return None
    return tx


def _check_sweep(
    c: _Check,
    view: ChainView,
    sweeps: Sequence[SignedRef],
    *,
    hot_wallet: str | None,
    credited: int,
    charged: int,
    gas: int,
) -> None:
    if len(sweeps) != 1:
        c.problems.append(f"{len(sweeps)} sweeps were signed for this case; one was expected")
    sweep = sweeps[0]
    tx = _mined(c, view, sweep)
    if tx is None or hot_wallet is None:
        if hot_wallet is None:
            c.unknown(f"no hot wallet is known for {c.books.chain}")
        return
    booked = credited + charged + gas
    expected = booked
    reserved = 0
    if c.books.native:  # a native sweep pays its own gas: it moves the deposit less the gas it reserved
        reserved = (sweep.gas_limit or 0) * (sweep.max_fee_per_gas or 0)
        expected = booked - reserved
    moved = _moved(tx, c.books, sender=sweep.from_address, recipient=hot_wallet)
    less = f" - gas reserved {reserved}" if reserved else ""
    if moved != expected:
        c.problems.append(
            f"the sweep {_short(sweep.tx_hash)} moved {moved} base units to the hot wallet, the ledger books "
            f"credited {credited} + fee {charged} + gas {gas}{less} = {expected}: {c.off(moved, expected)} "
            f"({c.books.asset})"
        )
    else:
        c.checked.append(
            f"sweep {_short(sweep.tx_hash)} moved {c.units(moved)} = credited {c.units(credited)} + fee "
            f"{c.units(charged)} + gas {c.units(gas)}" + (f" - gas reserved {reserved} base units" if reserved else "")
        )


def _check_refund(c: _Check, view: ChainView, *, hot_wallet: str | None, charged: int, gas: int) -> None:
    books = c.books
    refund_txs = [s for s in books.signed if s.purpose == "refund"]
    fee_txs = [s for s in books.signed if s.purpose == "refund_fee"]
    if len(refund_txs) != 1 or len(books.refunds) != 1:
        c.problems.append(
            f"a refund has one refund transaction and one `ledger_refunds` row; the case has {len(refund_txs)} "
            f"and {len(books.refunds)}"
        )
        return
    signed, booked = refund_txs[0], books.refunds[0]
    if signed.tx_hash.lower() != booked.tx_hash.lower():
        c.problems.append(f"the ledger's refund names {booked.tx_hash}, the engine signed {signed.tx_hash}")
    tx = _mined(c, view, signed)
    if tx is not None:
        moved = _moved(tx, books, sender=signed.from_address, recipient=booked.to_address)
        if moved != booked.amount:
            c.problems.append(
                f"the refund {_short(signed.tx_hash)} moved {moved} base units to the sender {booked.to_address}, "
                f"the ledger's refund is {booked.amount}: {c.off(moved, booked.amount)} ({books.asset})"
            )
        else:
            c.checked.append(f"refund {_short(signed.tx_hash)} moved {c.units(moved)} to the sender")
    kept = charged + gas
    if len(fee_txs) > 1:
        c.problems.append(f"{len(fee_txs)} refund_fee transactions were signed for this case; one was expected")
    if not fee_txs:
        if kept:
            c.problems.append(
                f"no refund_fee transaction, but the ledger books fee {charged} + gas {gas} = {kept} base units kept"
            )
        return
    fee_tx = _mined(c, view, fee_txs[0])
    if fee_tx is None or hot_wallet is None:
        if hot_wallet is None:
            c.unknown(f"no hot wallet is known for {books.chain}")
        return
    moved = _moved(fee_tx, books, sender=fee_txs[0].from_address, recipient=hot_wallet)
    if moved != kept:
        c.problems.append(
            f"the refund_fee {_short(fee_txs[0].tx_hash)} moved {moved} base units to the hot wallet, the ledger "
            f"books fee {charged} + gas {gas} = {kept}: {c.off(moved, kept)} ({books.asset})"
        )
    else:
        c.checked.append(
            f"refund_fee {_short(fee_txs[0].tx_hash)} moved {c.units(moved)} = fee {c.units(charged)} + gas "
            f"{c.units(gas)}"
        )


def _check_manual(c: _Check, view: ChainView, *, hot_wallet: str | None, credited: int, charged: int, gas: int) -> None:
    manual = c.books.manual
    assert manual is not None
    booked = credited + charged + gas
    if manual.amount != booked:
        c.problems.append(
            f"the off-engine transfer was recorded as {manual.amount} base units, the ledger books credited "
            f"{credited} + fee {charged} + gas {gas} = {booked}: {c.off(manual.amount, booked)} ({c.books.asset})"
        )
    trace = view.manual
    if trace is None:
        if view.error is None:
            c.unknown(f"the off-engine transaction {manual.tx_hash} was not read")
        return
    if not trace.found:
        c.unknown(f"the off-engine transaction {manual.tx_hash} was not found on {manual.chain}")
        return
    if trace.succeeded is False:
        c.problems.append(f"the off-engine transaction {manual.tx_hash} failed on {manual.chain}")
        return
    transfer = trace.transfer_at(manual.log_index)
    if transfer is None:
        c.problems.append(f"the off-engine transaction {manual.tx_hash} has no transfer at index {manual.log_index}")
        return
    if hot_wallet is not None and transfer.recipient.lower() != hot_wallet.lower():
        c.problems.append(
            f"the off-engine transfer in {_short(manual.tx_hash)} went to {transfer.recipient}, not the hot wallet"
        )
    if transfer.amount != manual.amount:
        c.problems.append(
            f"the off-engine transfer in {_short(manual.tx_hash)} moved {transfer.amount} base units, recorded "
            f"{manual.amount}: {c.off(transfer.amount, manual.amount)}"
        )
    elif manual.amount == booked:
        c.checked.append(f"off-engine transfer {_short(manual.tx_hash)} moved {c.units(transfer.amount)} as booked")


def _check_gas(c: _Check, view: ChainView) -> int | None:
    """Each mined transaction's gas against its one ``gas_spent`` row; rows without a transaction. Returns the
    gas the chain says was spent (None when a transaction was not read)."""
    books = c.books
    rows: dict[str, list[GasRow]] = {}
    for row in books.gas_spent:
        rows.setdefault((row.tx_hash or "").lower(), []).append(row)
    spent: int | None = 0
    matched = 0
    for signed in books.signed:
        own = rows.pop(signed.tx_hash.lower(), [])
        tx = view.txs.get(signed.tx_hash.lower()) if view.error is None else None
        if tx is None or not tx.mined:
            if view.error is None:
                c.unknown(f"no receipt for the {signed.purpose} {signed.tx_hash} on {books.chain}")
            spent = None
            continue
        if not tx.succeeded:
            message = f"the {signed.purpose} {signed.tx_hash} reverted on {books.chain}"
            if message not in c.problems:
                c.problems.append(message)
        if spent is not None:
            spent += tx.gas_paid
        if not own:
            c.problems.append(
                f"no gas_spent row for the {signed.purpose} {_short(signed.tx_hash)}, which spent {tx.gas_paid} "
                f"base units ({c.native(tx.gas_paid)})"
            )
            continue
        booked = sum(r.amount for r in own)
        if len(own) > 1:
            c.problems.append(
                f"{len(own)} gas_spent rows for the {signed.purpose} {_short(signed.tx_hash)} book {booked} base "
                f"units, its receipt says {tx.gas_paid}: {c.off(tx.gas_paid, booked)}"
            )
        elif booked != tx.gas_paid or (own[0].gas_used, own[0].gas_price) not in (
            (tx.gas_used, tx.gas_price),
            (None, None),
        ):
            c.problems.append(
                f"gas_spent of the {signed.purpose} {_short(signed.tx_hash)} books {booked} base units "
                f"({own[0].gas_used} gas x {own[0].gas_price}), its receipt says {tx.gas_used} x {tx.gas_price} = "
                f"{tx.gas_paid}: {c.off(tx.gas_paid, booked)} ({books.native_symbol})"
            )
        else:
            matched += 1
    for tx_hash, extra in rows.items():
        total = sum(r.amount for r in extra)
        c.problems.append(
            f"{len(extra)} gas_spent row(s) of {total} base units ({c.native(total)}) for "
            f"{tx_hash or 'no transaction'}, which is no transaction of this case"
        )
    if matched:
        c.checked.append(f"gas of {matched} transaction(s) as booked")
    return spent


# --------------------------------------------------------------------------------------------------
# Reading the books and the chains, writing the results


def load_books(session: Session, *, case_id: str, settings: Settings) -> CaseBooks | None:
    """The case's money as the database holds it; None when there is no such case."""
    case = session.get(Case, case_id)
    if case is None:
        return None
    chain = case.chain or ""
    try:
        config = settings.require_chain(chain)
        native_symbol, native_decimals = config.native_symbol, config.native_decimals
    except UnknownChain:
        native_symbol, native_decimals = "native coin", 18
    rows = fee_ledger.entries(session, case_id=case_id)
    charged = [r for r in rows if r.kind == FeeKind.CHARGED]
    gas_charged = [r for r in rows if r.kind == FeeKind.GAS_CHARGED]
    priced = next((r for r in gas_charged + charged if r.price_usd is not None), None)
    credits = session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
    refunds = session.exec(select(RefundEntry).where(RefundEntry.case_id == case_id)).all()
    signed = session.exec(
        select(SignedTransaction)
        .where(SignedTransaction.case_id == case_id)
        .order_by(col(SignedTransaction.created_at), col(SignedTransaction.nonce))
    ).all()
    manual = session.get(ManualExecution, case_id)
    return CaseBooks(
        case_id=case_id,
        chain=chain,
        asset=case.asset or case.token_address or "?",
        token_address=case.token_address,
        decimals=case.decimals,
        amount=case.amount,
        native_symbol=native_symbol,
        native_decimals=native_decimals,
        credits=tuple(c.amount for c in credits),
        refunds=tuple(RefundRef(amount=r.amount, to_address=r.to_address, tx_hash=r.tx_hash) for r in refunds),
        charged=sum(r.amount for r in charged) if charged else None,
        gas_charged=sum(r.amount for r in gas_charged) if gas_charged else None,
        recovered=next((r.amount for r in rows if r.kind == FeeKind.RECOVERED), None),
        asset_price_usd=Decimal(priced.price_usd) if priced is not None and priced.price_usd else None,
        gas_spent=tuple(
            GasRow(
                tx_hash=r.tx_hash,
                amount=r.amount,
                gas_used=r.gas_used,
                gas_price=r.gas_price,
                price_usd=Decimal(r.price_usd) if r.price_usd else None,
            )
            for r in rows
            if r.kind == FeeKind.GAS_SPENT
        ),
        signed=tuple(
            SignedRef(
                purpose=s.purpose,
                tx_hash=s.tx_hash,
                from_address=s.from_address,
                gas_limit=s.gas_limit,
                max_fee_per_gas=s.max_fee_per_gas,
            )
            for s in signed
        ),
        manual=(
            ManualRef(chain=manual.chain, tx_hash=manual.tx_hash, log_index=manual.log_index, amount=manual.amount)
            if manual is not None
            else None
        ),
    )


def chain_tx(config: Any, tx_hash: str, tx: Mapping[str, Any] | None, receipt: Mapping[str, Any] | None) -> ChainTx:
    """A transaction and its receipt (raw JSON-RPC objects) as a :class:`ChainTx`."""
    if tx is None or receipt is None or receipt.get("blockNumber") is None:
        return ChainTx(tx_hash=tx_hash, mined=False)
    price = receipt.get("effectiveGasPrice")
    if price is None:  # nodes before London: the transaction's own gas price
        price = tx.get("gasPrice") or 0
    return ChainTx(
        tx_hash=tx_hash,
        mined=True,
        succeeded=receipt_succeeded(receipt),
        gas_used=hex_to_int(receipt.get("gasUsed") or 0),
        gas_price=hex_to_int(price),
        transfers=tuple(transfers_of(config, tx, receipt)),
    )


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    chain: str
    status: ReconStatus
    detail: str
    gas_charged_native: int | None
    gas_spent_native: int | None
    native_symbol: str
    native_decimals: int


@dataclass(frozen=True)
class RunReport:
    run_id: int
    since: datetime | None
    until: datetime | None
    cases: list[CaseResult]

    @property
    def mismatches(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status is ReconStatus.MISMATCH]

    @property
    def uncheckable(self) -> list[CaseResult]:
        return [c for c in self.cases if c.status is ReconStatus.UNCHECKABLE]

    @property
    def ok(self) -> int:
        return sum(c.status is ReconStatus.OK for c in self.cases)


class Reconciler:
    """Reconciles completed cases against their chains and records the findings."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        signer: Signer,
        chains: EvmChains | None = None,
        tracer: Tracer | None = None,
        concurrency: int = CONCURRENCY,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._signer = signer
        self._chains = chains or EvmChains(settings)
        self._tracer = tracer or Tracer(settings)
        self._concurrency = concurrency

    async def run(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        trigger: str = "cli",
        on_progress: Callable[[int], None] | None = None,
    ) -> RunReport:
        """One reconciliation run over the COMPLETED cases whose charge was booked in ``[since, until)`` (all
        when both are None): a ``reconciliation_runs`` row, and each case's finding replaced."""
        run_id = await run_in_session(self._engine, results.start_run, since=since, until=until, trigger=trigger)
        case_ids = await run_in_session(self._engine, results.completed_case_ids, since=since, until=until)
        limit = asyncio.Semaphore(self._concurrency)
        done = [0]

        async def one(case_id: str) -> CaseResult | None:
            async with limit:
                found = await self.check_case(case_id, run_id=run_id)
            done[0] += 1
            if on_progress is not None:
                on_progress(done[0])
            return found

        checked = [c for c in await asyncio.gather(*(one(i) for i in case_ids)) if c is not None]
        report = RunReport(run_id=run_id, since=since, until=until, cases=checked)
        await run_in_session(
            self._engine,
            results.finish_run,
            run_id=run_id,
            cases_checked=len(checked),
            mismatches=len(report.mismatches),
            uncheckable=len(report.uncheckable),
        )
        log.info(
            "reconciliation run %d: %d case(s), %d mismatch(es), %d uncheckable",
            run_id,
            len(checked),
            len(report.mismatches),
            len(report.uncheckable),
        )
        return report

    async def check_case(self, case_id: str, *, run_id: int) -> CaseResult | None:
        books = await run_in_session(self._engine, load_books, case_id=case_id, settings=self._settings)
        if books is None:
            return None
        view = await self.read_chain(books)
        finding = compare(books, view, hot_wallet=self._hot_wallet(books.manual.chain if books.manual else books.chain))
        detail = finding.detail(books)
        await run_in_session(
            self._engine,
            results.record,
            finding=CaseReconciliation(
                case_id=case_id,
                run_id=run_id,
                status=finding.status,
                detail=detail,
                gas_charged_native=finding.gas_charged_native,
                gas_spent_native=finding.gas_spent_native,
            ),
        )
        return CaseResult(
            case_id=case_id,
            chain=books.chain,
            status=finding.status,
            detail=detail,
            gas_charged_native=finding.gas_charged_native,
            gas_spent_native=finding.gas_spent_native,
            native_symbol=books.native_symbol,
            native_decimals=books.native_decimals,
        )

    def _hot_wallet(self, chain: str) -> str | None:
        try:
            config = self._settings.require_chain(chain)
        except UnknownChain:
            return None
        return self._signer.address(HOT_WALLET_PATH) if config.family == "evm" else config.hot_wallet

    async def read_chain(self, books: CaseBooks) -> ChainView:
        """The case's transactions (receipts and transfers), and an off-engine recovery's trace."""
        manual: TraceResult | None = None
        try:
            if books.manual is not None:
                manual = await self._tracer.trace(chain=books.manual.chain, tx_hash=books.manual.tx_hash)
            txs: dict[str, ChainTx] = {}
            if books.signed:
                txs = await self._read_txs(books.chain, [s.tx_hash for s in books.signed])
        except (RpcError, UnknownChain, OSError, ValueError) as exc:
            return ChainView(manual=manual, error=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        except Exception as exc:  # noqa: BLE001 - a node down is uncheckable, never a crash of the whole run
            return ChainView(manual=manual, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        return ChainView(txs=txs, manual=manual)

    async def _read_txs(self, chain_name: str, tx_hashes: Sequence[str]) -> dict[str, ChainTx]:
        chain = self._chains.get(chain_name)
        hashes = [normalize_tx_hash(h) for h in tx_hashes]
        out: dict[str, ChainTx] = {}
        per_batch = RPC_BATCH_CALLS // 2
        for start in range(0, len(hashes), per_batch):
            part = hashes[start : start + per_batch]
            calls: list[tuple[str, Sequence[Any] | None]] = []
            for h in part:
                calls += [("eth_getTransactionByHash", [h]), ("eth_getTransactionReceipt", [h])]
            replies = await chain.rpc.batch(calls)
            for i, h in enumerate(part):
                tx, receipt = replies[2 * i], replies[2 * i + 1]
                if isinstance(tx, RpcError):
                    raise tx
                if isinstance(receipt, RpcError):
                    raise receipt
                out[h] = chain_tx(chain.config, h, tx, receipt)
        return out
