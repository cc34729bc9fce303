"""Settling a recovery: split what was recovered into credit (or refund), fee and gas, book the ledger entries and
complete the case, in one database transaction, at most once per deposit.

This module is the one writer of a case's completion; neither the ledger nor the case store knows the
other, the transaction is composed here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from fees.policy import native_to_asset_units, settle, settle_refund
from fees.prices import PricePort
from recovery.errors import PermanentError
from recovery.i18n import SEPARATED, AmountText, Message
from recovery.i18n import amount as whole_units
from recovery.models import Quote, Refund, Settlement, Transfer, TxReceipt
from recovery.units import amount_text
from services.case_refs import case_ref
from services.evm_chains import EvmChains
from services.incidents import compensation_entry, waived_message
from services.pricing import asset_and_decimals, require_price
from store import cases, fee_ledger, incidents, ledger
from store.cases import CaseNotFound
from store.db import begin_write, run_in_session
from store.fee_ledger import CaseRef, FeeKind, GasSpent
from store.incidents import Incident

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
    price_usd: Decimal | None = None,
    gas_spent: Sequence[GasSpent] = (),
    waived_fee: int = 0,
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
    ref = case_ref(session, case, chain=chain)  # read before anything is added: no autoflush
    # an incident declared at any time before this commit waives the fee (services.incidents)
    incident = incidents.covering(session, chain=case.chain or chain, asset=case.asset, at=case.created_at)
    waived, paid_back = 0, 0
    if incident is not None:
        waived = waived_fee  # a quote the incident waived already: the fee it would have charged
        if refund is not None:
            paid_back = settlement.fee  # already sent to the hot wallet with the refund: paid back
        elif settlement.fee > 0:  # quoted before the incident was declared: waived now
            waived = settlement.fee
            settlement = settlement.model_copy(update={"credited": settlement.credited + settlement.fee, "fee": 0})

    # the case first (its completion reads the timeline), then the ledger entries: nothing is flushed
    # before the commit, where a concurrent settlement of the same deposit surfaces as a key violation
    cases.add_completion(
        session,
        case=case,
        settlement=settlement,
        fee_usd=fee_usd,
        message=_completion_message(case.decimals, asset, settlement, refund, incident),
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
        ref=ref,
        decimals=case.decimals,
        price_usd=price_usd,
        gas_spent=gas_spent,
        opened_at=case.created_at,
    )
    if incident is not None:
        _book_incident(
            session,
            ref,
            incident,
            asset=asset,
            decimals=case.decimals,
            price_usd=price_usd,
            waived=waived,
            paid_back=paid_back,
        )
    try:
        session.commit()
    except IntegrityError:  # a concurrent worker settled this deposit first
        session.rollback()
        return False
    return True


def _book_incident(
    session: Session,
    ref: CaseRef,
    incident: Incident,
    *,
    asset: str,
    decimals: int | None,
    price_usd: Decimal | None,
    waived: int,
    paid_back: int,
) -> None:
    """The incident's entries for a case settling in its window: the waived fee, or the fee paid back (a
    refund moved it on chain before the settlement), and the compensation."""
    assert incident.id is not None
    for kind, amount in ((FeeKind.WAIVED, waived), (FeeKind.REFUNDED, paid_back)):
        if amount > 0:
            fee_ledger.add_once(
                session,
                fee_ledger.entry(
                    ref,
                    kind=kind,
                    key=fee_ledger.step_key(ref.case_id, kind),
                    asset=asset,
                    decimals=decimals,
                    amount=amount,
                    price_usd=price_usd,
                    incident_id=incident.id,
                    note=f"incident #{incident.id}: {incident.reason}",
                ),
            )
    compensation = compensation_entry(ref, incident)
    if compensation is not None:
        fee_ledger.add_once(session, compensation)


def _completion_message(
    decimals: int | None, asset: str, settlement: Settlement, refund: Refund | None, incident: Incident | None
) -> str:
    """The timeline's "credited" event: what was credited (or refunded), the fee and the network cost, and the
    incident that waived the fee."""
    costs = {"fee": _units(settlement.fee, decimals), "gas": _units(settlement.gas, decimals)}
    if refund is None:
        message = Message(
            "Credited {amount} to your account (recovery fee {fee}, network cost {gas})",
            amount=_units(settlement.credited, decimals, asset),
            **costs,
        )
    else:
        message = Message(
            "Refunded {amount} to {recipient} in {tx_hash} (recovery fee {fee}, network cost {gas})",
            amount=_units(settlement.refunded, decimals, asset),
            recipient=refund.to,
            tx_hash=refund.tx_hash,
            **costs,
        )
    return message if incident is None else Message(SEPARATED, first=message, second=waived_message(incident))


def _units(base_units: int, decimals: int | None, asset: str | None = None) -> Any:
    """An amount for a reader, formatted for their language (its base units as they are without decimals)."""
    if decimals is None:
        return amount_text(base_units, decimals, asset)
    return whole_units(base_units, decimals) if asset is None else AmountText(base_units, decimals, asset)


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
        await run_in_session(
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
            price_usd=quote.unit_price_usd(),
            gas_spent=self._gas_spent(deposit.chain, receipts),
            waived_fee=quote.waived_fee,
        )
        # what the ledger holds: this call's figures, a retry's or a concurrent worker's, less a waived fee
        settlement = await run_in_session(
            self._engine, ledger.booked_settlement, case_id=case_id, deposit_key=deposit.key, gas_native=gas_native
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

    def _gas_spent(self, chain: str, receipts: list[TxReceipt]) -> list[GasSpent]:
        if not receipts:
            return []
        config = self._chains.config(chain)
        price = self._prices.usd_price(config.native_symbol)
        return [
            GasSpent(
                tx_hash=r.tx_hash,
                gas_used=r.gas_used,
                gas_price=r.effective_gas_price,
                asset=config.native_symbol,
                decimals=config.native_decimals,
                price_usd=price,
            )
            for r in receipts
        ]

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
