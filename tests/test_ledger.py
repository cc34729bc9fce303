"""The dev ledger: a deposit is credited at most once, atomically with its fee and the case's completion."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from recovery.models import CaseStatus, Settlement, deposit_key
from services.settlement import settle_case
from store import cases, fee_ledger, ledger
from store.fee_ledger import FeeKind, FeeLedgerEntry
from tests.test_store import HUGE, new_case, run_threads

TX = "0x" + "ab" * 32
KEY = deposit_key("bsc", TX, 3)


def settlement(recovered: int = 10**20, fee: int = 10 * 10**18, gas: int = 10**16) -> Settlement:
    return Settlement(recovered=recovered, credited=recovered - fee - gas, fee=fee, gas=gas, gas_native=10**15)


def settle(session: Session, *, s: Settlement | None = None, key: str = KEY, case_id: str = "case-1") -> bool:
    return settle_case(
        session,
        case_id=case_id,
        user_id="alice",
        deposit_key=key,
        chain="bsc",
        asset="USDT",
        settlement=s or settlement(),
        fee_usd=Decimal("10.00"),
    )


def counts(session: Session) -> tuple[int, int]:
    return (
        len(session.exec(select(ledger.LedgerCredit)).all()),
        len(session.exec(select(FeeLedgerEntry).where(FeeLedgerEntry.kind == FeeKind.CHARGED)).all()),
    )


def test_settle_case_credits_once(db_session: Session) -> None:
    new_case(db_session)
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    case.decimals = 18
    db_session.add(case)
    db_session.commit()

    assert ledger.is_credited(db_session, deposit_key=KEY) is False
    assert settle(db_session) is True
    assert ledger.is_credited(db_session, deposit_key=KEY) is True

    credit = db_session.get(ledger.LedgerCredit, "credit:" + KEY)
    fee = fee_ledger.one(db_session, case_id="case-1", kind=FeeKind.CHARGED)
    gas = fee_ledger.one(db_session, case_id="case-1", kind=FeeKind.GAS_CHARGED)
    assert credit is not None and fee is not None and gas is not None
    assert (credit.user_id, credit.asset, credit.amount) == ("alice", "USDT", 10**20 - 10 * 10**18 - 10**16)
    assert (fee.chain, fee.amount, fee.usd_micros, fee.idempotency_key) == ("bsc", 10 * 10**18, 10**7, "case-1:charged")
    assert (gas.amount, gas.usd_micros) == (10**16, None)  # no price was given: USD unknown, not made up

    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    assert (case.status, case.credited, case.fee, case.gas, case.fee_usd) == (
        CaseStatus.COMPLETED,
        credit.amount,
        10 * 10**18,
        10**16,
        "10.00",
    )
    credited_events = [e for e in cases.timeline(db_session, case_id="case-1") if e.key == "credited"]
    assert len(credited_events) == 1
    assert "89.99 USDT" in credited_events[0].message

    # a retry (even with other numbers) changes nothing
    assert settle(db_session, s=settlement(fee=1, gas=1)) is False
    db_session.expire_all()
    assert counts(db_session) == (1, 1)
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None and case.fee == 10 * 10**18


def test_settle_case_huge_amounts(db_session: Session) -> None:
    new_case(db_session)
    s = settlement(recovered=HUGE, fee=HUGE // 20, gas=12345)
    assert settle(db_session, s=s) is True
    db_session.expire_all()
    credit = db_session.get(ledger.LedgerCredit, "credit:" + KEY)
    assert credit is not None and credit.amount == HUGE - HUGE // 20 - 12345
    fee = fee_ledger.one(db_session, case_id="case-1", kind=FeeKind.CHARGED)
    assert fee is not None and fee.amount == HUGE // 20
    assert fee_ledger.join_limbs([fee.amount_l0, fee.amount_l1, fee.amount_l2], fee.amount_hi or 0) == HUGE // 20


def test_settle_case_refuses_inconsistent_or_foreign(db_session: Session) -> None:
    new_case(db_session)
    bad = Settlement(recovered=100, credited=90, fee=5, gas=6, gas_native=1)
    with pytest.raises(ValueError, match="does not add up"):
        settle(db_session, s=bad)
    new_case(db_session, case_id="case-bob", user_id="bob")
    with pytest.raises(ValueError, match="belongs to bob"):
        settle(db_session, case_id="case-bob", key="other")
    with pytest.raises(cases.CaseNotFound):
        settle(db_session, case_id="nope", key="other2")
    assert counts(db_session) == (0, 0)
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None and case.status is CaseStatus.RECEIVED


def test_settle_case_race_credits_once(db_engine: Engine) -> None:
    with Session(db_engine) as session:
        new_case(session)

    def run(i: int) -> bool:
        with Session(db_engine) as session:
            return settle(session, s=settlement(fee=10**18 + i))

    results = run_threads(8, run)
    assert sorted(results, key=str) == [False] * 7 + [True], results
    with Session(db_engine) as session:
        assert counts(session) == (1, 1)
        fee = fee_ledger.one(session, case_id="case-1", kind=FeeKind.CHARGED)
        case = cases.get_case(session, case_id="case-1")
        assert fee is not None and case is not None
        # the winner's numbers everywhere: the credit, the fee and the case agree
        assert case.fee == fee.amount and case.status is CaseStatus.COMPLETED
        credit = session.get(ledger.LedgerCredit, "credit:" + KEY)
        assert credit is not None and credit.amount == case.credited == 10**20 - fee.amount - 10**16


def test_booked_settlement_is_what_the_first_settlement_wrote(db_session: Session) -> None:
    """A retried settlement reports the booked figures, even if it recomputed different ones."""
    new_case(db_session)
    first = settlement(fee=15 * 10**18, gas=5 * 10**16)
    assert settle(db_session, s=first) is True
    assert settle(db_session, s=settlement(fee=15 * 10**18, gas=9 * 10**16)) is False
    booked = ledger.booked_settlement(db_session, case_id="case-1", deposit_key=KEY, gas_native=1)
    assert (booked.recovered, booked.credited, booked.fee, booked.gas) == (
        first.recovered,
        first.credited,
        first.fee,
        first.gas,
    )


def test_two_workers_charging_one_case_get_one_charge(db_engine: Engine) -> None:
    """The database, not only the code: two workers settle the same case under different deposit keys (as a
    bug that recomputed the key would), so no credit key collides; the one-charge index still lets one win."""
    with Session(db_engine) as session:
        new_case(session)

    def run(i: int) -> bool | Exception:
        with Session(db_engine) as session:
            try:
                return settle(session, key=f"bsc:0x{i}:0", s=settlement(fee=10**18 + i))
            except Exception as exc:  # surfaced as the result
                return exc

    results = run_threads(2, run)
    assert sorted(results, key=str) == [False, True], results
    with Session(db_engine) as session:
        charges = fee_ledger.entries(session, case_id="case-1", kind=FeeKind.CHARGED)
        credits = session.exec(select(ledger.LedgerCredit)).all()
        assert len(charges) == 1 and len(credits) == 1
        assert credits[0].amount == 10**20 - charges[0].amount - 10**16


def test_ledger_usd_values_are_exact_for_256_bit_amounts() -> None:
    ref = fee_ledger.CaseRef(case_id="c", user_id="u", chain="bsc", pattern=None, route=None)
    huge = 2**256 - 1
    row = fee_ledger.entry(
        ref, kind=FeeKind.CHARGED, key="c:charged", asset="TOK", decimals=18, amount=huge, price_usd=Decimal("1.5")
    )
    # the exact product, rounded half-even once: huge * 1.5 / 10**18 USD in micro-dollars
    exact = Fraction(huge * 15 * 10**6, 10 * 10**18)
    assert row.usd_micros == round(exact) and len(str(row.usd_micros)) > 28
    assert fee_ledger.join_limbs([row.usd_l0, row.usd_l1], row.usd_hi or 0) == row.usd_micros
    assert fee_ledger.join_limbs([row.amount_l0, row.amount_l1, row.amount_l2], row.amount_hi or 0) == huge
    assert fee_ledger.to_micros(Decimal("0.0000025")) == 2 and fee_ledger.to_micros(Decimal("0.0000035")) == 4


def test_open_quotes_follow_the_ledger(db_session: Session) -> None:
    """The latest quote of a case stays open until the case is charged; a quote after the charge opens none."""
    ref = fee_ledger.CaseRef(case_id="case-1", user_id="alice", chain="bsc", pattern=None, route=None)

    def quote(step: str, fee: int) -> bool:
        row = fee_ledger.entry(
            ref, kind=FeeKind.QUOTED, key=f"case-1:quoted:{step}", asset="USDT", decimals=18, amount=fee, price_usd=None
        )
        added = fee_ledger.add_once(db_session, row)
        db_session.commit()
        return added

    def open_key() -> str | None:
        row = db_session.get(fee_ledger.FeeOpenQuote, "case-1")
        return None if row is None else row.entry_key

    new_case(db_session)
    assert quote("classified", 5) and open_key() == "case-1:quoted:classified"
    assert quote("approved", 7) and open_key() == "case-1:quoted:approved"
    assert not quote("approved", 7) and open_key() == "case-1:quoted:approved"  # a retry books nothing
    assert settle(db_session) is True
    db_session.expire_all()
    assert open_key() is None
    assert quote("rerun", 9) and open_key() is None
