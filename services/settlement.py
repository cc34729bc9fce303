"""Settling a recovery: split what was recovered into credit (or refund), fee and gas, book the ledger entries and
complete the case, in one database transaction, at most once per deposit.

This module is the one writer of a case's completion; neither the ledger nor the case store knows the
other, the transaction is composed here.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fees.policy import native_to_asset_units, settle, settle_refund
from fees.prices import PricePort
from recovery.errors import PermanentError
from recovery.models import Quote, Refund, Settlement, Transfer, TxReceipt
from recovery.units import amount_text
from services.evm_chains import EvmChains
from services.pricing import asset_and_decimals, require_price
from store import cases, ledger
from store.cases import CaseNotFound
from store.db import begin_write, run_in_session

log = logging.getLogger(__name__)


class RefusedSettlement(PermanentError):
    pass


def settle_case(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    deposit_key: str,
    chain: str,
    asset: str,
    settlement: Settlement,
    fee_usd: Decimal,
    refund: Refund | None = None,
) -> bool:
    """Credit the user (or book the refund to the sender), book the fee and complete the case, in one
    transaction, at most once.

    Returns True when this call settled the deposit, False when it had already been settled (by an
    earlier attempt or a concurrent worker); then nothing changes. Raises :class:`CaseNotFound`, or
    ``ValueError`` for an inconsistent settlement or a case owned by another user.
    """
    parts = (settlement.credited, settlement.refunded, settlement.fee, settlement.gas)
    if min(parts) < 0 or sum(parts) != settlement.recovered:
        raise ValueError(
            f"settlement does not add up: credited {settlement.credited} + refunded {settlement.refunded} "
            f"+ fee {settlement.fee} + gas {settlement.gas} != recovered {settlement.recovered}"
        )
    if (refund is not None) != (settlement.refunded > 0) or (
        refund is not None and refund.amount != settlement.refunded
    ):
        raise ValueError(f"the refund {refund} does not match the settlement's refunded {settlement.refunded}")
    begin_write(session)
    if ledger.is_settled(session, deposit_key=deposit_key):
        session.rollback()
        return False
    case = cases.get_case(session, case_id=case_id)
    if case is None:
        session.rollback()
        raise CaseNotFound(case_id)
    if case.user_id != user_id:
        session.rollback()
        raise ValueError(f"case {case_id} belongs to {case.user_id}, not {user_id}")

    # the case first (its completion reads the timeline), then the ledger entries: nothing is flushed
    # before the commit, where a concurrent settlement of the same deposit surfaces as a key violation
    cases.add_completion(
        session,
        case=case,
        settlement=settlement,
        fee_usd=fee_usd,
        message=(
            _credited_message(case.decimals, asset, settlement)
            if refund is None
            else _refunded_message(case.decimals, asset, settlement, refund)
        ),
    )
    ledger.add_entries(
        session,
        case_id=case_id,
        user_id=user_id,
        deposit_key=deposit_key,
        chain=chain,
        asset=asset,
        settlement=settlement,
        fee_usd=fee_usd,
        refund=refund,
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent worker settled this deposit first
        session.rollback()
        return False
    return True


def _credited_message(decimals: int | None, asset: str, settlement: Settlement) -> str:
    return (
        f"Credited {amount_text(settlement.credited, decimals, asset)} to your account "
        f"(recovery fee {amount_text(settlement.fee, decimals)}, network cost {amount_text(settlement.gas, decimals)})"
    )


def _refunded_message(decimals: int | None, asset: str, settlement: Settlement, refund: Refund) -> str:
    return (
        f"Refunded {amount_text(settlement.refunded, decimals, asset)} to {refund.to} in {refund.tx_hash} "
        f"(recovery fee {amount_text(settlement.fee, decimals)}, network cost {amount_text(settlement.gas, decimals)})"
    )


class Settler:
    def __init__(self, *, engine: Engine, prices: PricePort, chains: EvmChains) -> None:
        self._engine = engine
        self._prices = prices
        self._chains = chains

    async def settle(
        self,
        *,
        case_id: str,
        user_id: str,
        deposit: Transfer,
        quote: Quote,
        receipts: list[TxReceipt],
        refund: Refund | None = None,
    ) -> Settlement:
        """Settle once; a retry that finds the deposit settled reports what the ledger holds. A refund
        charges the network cost quoted before it was signed (what the sender got was fixed then)."""
        if not all(r.succeeded for r in receipts):
            raise RefusedSettlement("refusing to settle: a recovery transaction reverted")
        asset, _decimals = asset_and_decimals(deposit)
        gas_native = sum(r.gas_used * r.effective_gas_price for r in receipts)
        if refund is None:
            # an absorbed network cost is the exchange's: the receipts still record what it spent
            gas = 0 if quote.network_cost == "absorbed" else self._gas_in_asset(deposit, gas_native)
            settlement = settle(recovered=deposit.amount, fee=quote.fee, gas=gas, gas_native=gas_native)
        else:
            try:
                settlement = settle_refund(
                    recovered=deposit.amount, refunded=refund.amount, fee=quote.fee, gas_native=gas_native
                )
            except ValueError as exc:
                raise RefusedSettlement(str(exc)) from None
        booked = await run_in_session(
            self._engine,
            settle_case,
            case_id=case_id,
            user_id=user_id,
            deposit_key=deposit.key,
            chain=deposit.chain,
            asset=asset,
            settlement=settlement,
            fee_usd=quote.fee_usd,
            refund=refund,
        )
        if not booked:
            settlement = await run_in_session(
                self._engine, ledger.booked_settlement, deposit_key=deposit.key, gas_native=gas_native
            )
        log.info(
            "case %s settled: recovered %d = credited %d + refunded %d + fee %d + gas %d (%s base units)",
            case_id,
            settlement.recovered,
            settlement.credited,
            settlement.refunded,
            settlement.fee,
            settlement.gas,
            asset,
        )
        return settlement

    def _gas_in_asset(self, deposit: Transfer, gas_native: int) -> int:
        if not gas_native:  # a credit of funds already held needs no transaction, and no native price
            return 0
        config = self._chains.config(deposit.chain)
        asset, decimals = asset_and_decimals(deposit)
        return native_to_asset_units(
            gas_native,
            native_decimals=config.native_decimals,
            native_price_usd=require_price(self._prices, config.native_symbol),
            decimals=decimals,
            price_usd=require_price(self._prices, asset),
        )
