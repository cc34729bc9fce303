"""The fee reconciliation's comparison: books written as the engine writes them (``settle_case``, signed
transactions, ``fee_ledger``) on SQLite and PostgreSQL, the chain answered by a fake reader, the findings read
back from ``case_reconciliation``. Plus the pure parts (native sweep, off-engine, the network cost) and the CLI's
input checks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from chains.endpoints import RpcError
from chains.signer import HOT_WALLET_PATH
from cli.reconcile import period, reconcile, report_lines
from recovery.models import NATIVE_LOG_INDEX, Refund, Settlement, TraceResult, Transfer
from recovery.settings import Settings
from services.reconciliation import (
    CaseBooks,
    ChainTx,
    ChainView,
    GasRow,
    ManualRef,
    Reconciler,
    SignedRef,
    compare,
    gas_charged_native,
)
from services.settlement import settle_case
from store import cases, fee_ledger, signed_txs
from store import reconciliation as results
from store.fee_ledger import CaseRef, FeeKind, GasSpent, Route
from store.reconciliation import CaseReconciliation, ReconciliationRun, ReconStatus
from tests.db_fixtures import MnemonicSigner

SIGNER = MnemonicSigner()
HOT = SIGNER.address(HOT_WALLET_PATH)
USDT = "0x55d398326f99059fF775485246999027B3197955"
DEPOSIT = "0x1111111111111111111111111111111111111111"
SENDER = "0x2222222222222222222222222222222222222222"
ELSEWHERE = "0x3333333333333333333333333333333333333333"
TOPUP, SWEEP, REFUND_TX, REFUND_FEE_TX = ("0x" + f"{i:02x}" * 32 for i in (1, 2, 3, 4))
GWEI = 10**9
TOPUP_GAS, SWEEP_GAS, PRICE = 21_000, 50_000, 5 * GWEI
AMOUNT = 100 * 10**18
FEE = 10 * 10**18
GAS = 213 * 10**15
"""The gas charged in USDT: (21,000 + 50,000) gas x 5 gwei = 0.000355 BNB at 600 USD = 0.213 USD."""
BNB_PRICE = Decimal("600")


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path)


def token_transfer(tx_hash: str, sender: str, recipient: str, amount: int, log_index: int = 0) -> Transfer:
    return Transfer(
        chain="bsc",
        tx_hash=tx_hash,
        log_index=log_index,
        token_address=USDT,
        asset="USDT",
        decimals=18,
        sender=sender,
        recipient=recipient,
        amount=amount,
    )


def mined(tx_hash: str, gas_used: int, *transfers: Transfer, succeeded: bool = True, gas_price: int = PRICE) -> ChainTx:
    return ChainTx(
        tx_hash=tx_hash,
        mined=True,
        succeeded=succeeded,
        gas_used=gas_used,
        gas_price=gas_price,
        transfers=transfers if succeeded else (),
    )


def open_case(session: Session, case_id: str, amount: int = AMOUNT) -> None:
    deposit = token_transfer("0x" + "ab" * 32, SENDER, DEPOSIT, amount, log_index=7)
    cases.create_case(
        session, case_id=case_id, user_id="alice", chain="bsc", tx_hash=deposit.tx_hash, log_index=7, deposit=deposit
    )


def spent(tx_hash: str, gas_used: int) -> GasSpent:
    return GasSpent(tx_hash=tx_hash, gas_used=gas_used, gas_price=PRICE, asset="BNB", decimals=18, price_usd=BNB_PRICE)


def book(
    session: Session,
    case_id: str,
    *,
    credited: int,
    fee: int = FEE,
    gas: int = GAS,
    gas_spent: Sequence[GasSpent] = (),
    refund: Refund | None = None,
) -> None:
    refunded = refund.amount if refund else 0
    assert settle_case(
        session,
        case_id=case_id,
        user_id="alice",
        deposit_key=f"bsc:{case_id}",
        chain="bsc",
        asset="USDT",
        settlement=Settlement(
            recovered=credited + refunded + fee + gas,
            credited=credited,
            refunded=refunded,
            fee=fee,
            gas=gas,
            gas_native=0,
        ),
        fee_usd=Decimal("10"),
        refund=refund,
        price_usd=Decimal("1"),
        gas_spent=gas_spent,
    )


def sign(session: Session, case_id: str, purpose: str, tx_hash: str, nonce: int, sender: str = DEPOSIT) -> None:
    signed_txs.save_signed_tx(
        session,
        idempotency_key=f"{case_id}:{purpose}",
        case_id=case_id,
        chain="bsc",
        purpose=purpose,
        from_address=sender,
        nonce=nonce,
        tx_hash=tx_hash,
        raw_tx="0x00",
        gas_limit=100_000,
        max_fee_per_gas=10 * GWEI,
    )


class FakeChain(Reconciler):
    """The reconciler with the chain's answers given: receipts by hash, an off-engine trace, or a node error."""

    def __init__(
        self,
        tmp_path: Path,
        engine: Engine,
        txs: Sequence[ChainTx] = (),
        *,
        error: str | None = None,
    ) -> None:
        super().__init__(settings=settings(tmp_path), engine=engine, signer=SIGNER)
        self.txs: Mapping[str, ChainTx] = {t.tx_hash.lower(): t for t in txs}
        self.error = error

    async def _read_txs(self, chain_name: str, tx_hashes: Sequence[str]) -> dict[str, ChainTx]:
        if self.error is not None:
            raise RpcError(-32000, self.error)
        return {h.lower(): self.txs[h.lower()] for h in tx_hashes if h.lower() in self.txs}


def finding(engine: Engine, case_id: str) -> CaseReconciliation:
    with Session(engine) as session:
        row = session.get(CaseReconciliation, case_id)
    assert row is not None
    return row


def swept_case(session: Session, case_id: str = "case-sweep", *, credited: int = AMOUNT - FEE - GAS) -> None:
    """A sweep as the engine books it: a top-up and a sweep signed, both receipts' gas booked."""
    open_case(session, case_id)
    sign(session, case_id, "sweep", SWEEP, 0)
    sign(session, case_id, "gas_topup", TOPUP, 0, sender=ELSEWHERE)
    book(session, case_id, credited=credited, gas_spent=[spent(TOPUP, TOPUP_GAS), spent(SWEEP, SWEEP_GAS)])


def sweep_chain(moved: int = AMOUNT, *, sweep_ok: bool = True) -> list[ChainTx]:
    return [
        mined(TOPUP, TOPUP_GAS),
        mined(SWEEP, SWEEP_GAS, token_transfer(SWEEP, DEPOSIT, HOT, moved), succeeded=sweep_ok),
    ]


# --- through the database, both backends -----------------------------------------------------------


async def test_a_sweep_that_matches_the_ledger_is_ok_with_its_network_cost(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    swept_case(db_session)
    report = await FakeChain(tmp_path, db_engine, sweep_chain()).run()

    assert [(c.case_id, c.status) for c in report.cases] == [("case-sweep", ReconStatus.OK)]
    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.OK and row.run_id == report.run_id
    assert "sweep 0x02020202…0202 moved 100 USDT = credited 89.787 USDT + fee 10 USDT + gas 0.213 USDT" in row.detail
    assert "gas of 2 transaction(s) as booked" in row.detail
    # 0.213 USDT at 1 USD is 0.000355 BNB at 600 USD: exactly what the receipts spent
    assert row.gas_charged_native == row.gas_spent_native == (TOPUP_GAS + SWEEP_GAS) * PRICE
    assert "charged - spent = +0 base units" in row.detail
    with Session(db_engine) as session:
        run = session.get(ReconciliationRun, report.run_id)
    assert run is not None and run.finished_at is not None
    assert (run.cases_checked, run.mismatches, run.uncheckable, run.trigger) == (1, 0, 0, "cli")


async def test_a_refund_that_matches_the_ledger_is_ok(db_session: Session, db_engine: Engine, tmp_path: Path) -> None:
    refunded = AMOUNT - FEE - GAS
    open_case(db_session, "case-refund")
    sign(db_session, "case-refund", "refund", REFUND_TX, 0)
    sign(db_session, "case-refund", "refund_fee", REFUND_FEE_TX, 1)
    sign(db_session, "case-refund", "gas_topup", TOPUP, 0, sender=ELSEWHERE)
    book(
        db_session,
        "case-refund",
        credited=0,
        refund=Refund(to=SENDER, amount=refunded, tx_hash=REFUND_TX),
        gas_spent=[spent(TOPUP, TOPUP_GAS), spent(REFUND_TX, SWEEP_GAS), spent(REFUND_FEE_TX, SWEEP_GAS)],
    )
    chain = [
        mined(TOPUP, TOPUP_GAS),
        mined(REFUND_TX, SWEEP_GAS, token_transfer(REFUND_TX, DEPOSIT, SENDER, refunded)),
        mined(REFUND_FEE_TX, SWEEP_GAS, token_transfer(REFUND_FEE_TX, DEPOSIT, HOT, FEE + GAS)),
    ]
    report = await FakeChain(tmp_path, db_engine, chain).run()

    assert report.cases[0].status is ReconStatus.OK, report.cases[0].detail
    row = finding(db_engine, "case-refund")
    assert "refund 0x03030303…0303 moved 89.787 USDT to the sender" in row.detail
    assert "refund_fee 0x04040404…0404 moved 10.213 USDT = fee 10 USDT + gas 0.213 USDT" in row.detail
    # a refund charges the quoted network cost: here less than the three receipts spent
    assert row.gas_spent_native == (TOPUP_GAS + 2 * SWEEP_GAS) * PRICE
    assert row.gas_charged_native is not None and row.gas_charged_native < row.gas_spent_native


async def test_a_wrong_credit_is_a_mismatch_saying_by_how_much(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    swept_case(db_session, credited=AMOUNT - FEE - GAS - 1)  # the ledger credits one base unit less
    report = await FakeChain(tmp_path, db_engine, sweep_chain()).run()

    assert report.cases[0].status is ReconStatus.MISMATCH
    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.MISMATCH
    assert (
        f"the sweep 0x02020202…0202 moved {AMOUNT} base units to the hot wallet, the ledger books credited "
        f"{AMOUNT - FEE - GAS - 1} + fee {FEE} + gas {GAS} = {AMOUNT - 1}: off by +1 base units (USDT)"
    ) in row.detail
    assert f"the deposit is {AMOUNT}: off by +1 base units" in row.detail
    lines = report_lines(report)
    assert lines[0].startswith("MISMATCH case-sweep (bsc): the sweep 0x02020202…0202 moved")
    assert "1 mismatch(es)" in lines[1]


async def test_a_missing_gas_spent_row_is_a_mismatch(db_session: Session, db_engine: Engine, tmp_path: Path) -> None:
    open_case(db_session, "case-sweep")
    sign(db_session, "case-sweep", "sweep", SWEEP, 0)
    sign(db_session, "case-sweep", "gas_topup", TOPUP, 0, sender=ELSEWHERE)
    book(db_session, "case-sweep", credited=AMOUNT - FEE - GAS, gas_spent=[spent(SWEEP, SWEEP_GAS)])  # no top-up row
    await FakeChain(tmp_path, db_engine, sweep_chain()).run()

    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.MISMATCH
    assert f"no gas_spent row for the gas_topup 0x01010101…0101, which spent {TOPUP_GAS * PRICE} base units" in (
        row.detail
    )
    assert row.gas_spent_native == (TOPUP_GAS + SWEEP_GAS) * PRICE  # the chain's figure, not the ledger's


async def test_an_extra_gas_spent_row_is_a_mismatch(db_session: Session, db_engine: Engine, tmp_path: Path) -> None:
    swept_case(db_session)
    stray = "0x" + "ee" * 32
    ref = CaseRef(case_id="case-sweep", user_id="alice", chain="bsc", pattern=None, route=Route.AUTOMATIC)
    db_session.add(
        fee_ledger.entry(
            ref,
            kind=FeeKind.GAS_SPENT,
            key=fee_ledger.step_key("case-sweep", f"gas_spent:{stray}"),
            asset="BNB",
            decimals=18,
            amount=777,
            price_usd=BNB_PRICE,
            tx_hash=stray,
            gas_used=7,
            gas_price=111,
        )
    )
    db_session.commit()
    await FakeChain(tmp_path, db_engine, sweep_chain()).run()

    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.MISMATCH
    assert f"1 gas_spent row(s) of 777 base units (0.000000000000000777 BNB) for {stray}, which is no transaction" in (
        row.detail
    )


async def test_a_gas_spent_row_that_disagrees_with_its_receipt_is_a_mismatch(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    swept_case(db_session)
    chain = [mined(TOPUP, TOPUP_GAS), mined(SWEEP, SWEEP_GAS + 1, token_transfer(SWEEP, DEPOSIT, HOT, AMOUNT))]
    await FakeChain(tmp_path, db_engine, chain).run()

    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.MISMATCH
    assert (
        f"gas_spent of the sweep 0x02020202…0202 books {SWEEP_GAS * PRICE} base units ({SWEEP_GAS} gas x {PRICE}), "
        f"its receipt says {SWEEP_GAS + 1} x {PRICE} = {(SWEEP_GAS + 1) * PRICE}: off by +{PRICE} base units (BNB)"
    ) in row.detail


async def test_a_reverted_recovery_transaction_is_a_mismatch(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    swept_case(db_session)
    await FakeChain(tmp_path, db_engine, sweep_chain(sweep_ok=False)).run()

    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.MISMATCH
    assert row.detail.startswith(f"the sweep {SWEEP} reverted on bsc")
    assert row.detail.count("reverted") == 1


async def test_a_credit_only_case_checks_the_ledger_against_the_deposit(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    open_case(db_session, "case-credit")
    book(db_session, "case-credit", credited=AMOUNT - FEE, gas=0)
    open_case(db_session, "case-credit-short", amount=AMOUNT)
    book(db_session, "case-credit-short", credited=AMOUNT - FEE - 5, gas=0)
    report = await FakeChain(tmp_path, db_engine).run()

    assert {c.case_id: c.status for c in report.cases} == {
        "case-credit": ReconStatus.OK,
        "case-credit-short": ReconStatus.MISMATCH,
    }
    ok = finding(db_engine, "case-credit")
    assert "credit only: credited 90 USDT + fee 10 USDT + gas 0 USDT = the deposit 100 USDT" in ok.detail
    assert (ok.gas_charged_native, ok.gas_spent_native) == (0, 0)
    short = finding(db_engine, "case-credit-short")
    assert f"= {AMOUNT - 5} base units, the deposit is {AMOUNT}: off by +5 base units (USDT)" in short.detail


async def test_an_unreadable_chain_is_uncheckable_and_a_window_selects_by_the_charge(
    db_session: Session, db_engine: Engine, tmp_path: Path
) -> None:
    swept_case(db_session)
    report = await FakeChain(tmp_path, db_engine, error="node down").run(trigger="schedule")
    row = finding(db_engine, "case-sweep")
    assert row.status is ReconStatus.UNCHECKABLE and "bsc not read: RPC error -32000: node down" in row.detail
    assert [c.status for c in report.uncheckable] == [ReconStatus.UNCHECKABLE]
    lines = report_lines(report)
    assert lines[0].startswith("UNCHECKABLE case-sweep (bsc): bsc not read")

    # no receipt at all: uncheckable too (checked again on the next run), the same row replaced
    second = await FakeChain(tmp_path, db_engine, [mined(TOPUP, TOPUP_GAS)]).run()
    row = finding(db_engine, "case-sweep")
    assert row.run_id == second.run_id and row.status is ReconStatus.UNCHECKABLE
    assert f"no receipt for the sweep {SWEEP} on bsc" in row.detail

    now = datetime.now(UTC)
    with Session(db_engine) as session:
        assert results.completed_case_ids(session, since=now - timedelta(hours=1), until=None) == ["case-sweep"]
        assert results.completed_case_ids(session, since=None, until=now - timedelta(hours=1)) == []
        assert results.completed_case_ids(session, since=None, until=None) == ["case-sweep"]
        runs = session.exec(select(ReconciliationRun)).all()
    assert [r.trigger for r in runs] == ["schedule", "cli"]


# --- pure -------------------------------------------------------------------------------------------------


def books(**changes: object) -> CaseBooks:
    base = CaseBooks(
        case_id="case-x",
        chain="bsc",
        asset="USDT",
        token_address=USDT,
        decimals=18,
        amount=AMOUNT,
        native_symbol="BNB",
        native_decimals=18,
        credits=(AMOUNT - FEE - GAS,),
        charged=FEE,
        gas_charged=GAS,
        asset_price_usd=Decimal("1"),
    )
    return CaseBooks(**(base.__dict__ | changes))  # type: ignore[arg-type]


def test_a_native_sweep_moves_the_deposit_less_the_gas_it_reserved() -> None:
    reserved = 21_000 * 10 * GWEI
    native = books(
        asset="BNB",
        token_address=None,
        signed=(SignedRef("sweep", SWEEP, DEPOSIT, gas_limit=21_000, max_fee_per_gas=10 * GWEI),),
        gas_spent=(GasRow(SWEEP, 21_000 * PRICE, 21_000, PRICE, BNB_PRICE),),
    )
    value = Transfer(
        chain="bsc",
        tx_hash=SWEEP,
        log_index=NATIVE_LOG_INDEX,
        token_address=None,
        asset="BNB",
        decimals=18,
        sender=DEPOSIT,
        recipient=HOT,
        amount=AMOUNT - reserved,
    )
    view = ChainView(txs={SWEEP: mined(SWEEP, 21_000, value)})
    ok = compare(native, view, hot_wallet=HOT)
    assert ok.status is ReconStatus.OK, ok.problems
    short = compare(
        native, ChainView(txs={SWEEP: mined(SWEEP, 21_000, value.model_copy(update={"amount": 1}))}), hot_wallet=HOT
    )
    assert short.status is ReconStatus.MISMATCH and "- gas reserved" in short.problems[0]


def test_an_off_engine_recovery_is_checked_against_its_recorded_transfer() -> None:
    rescue = "0x" + "cc" * 32
    manual = books(manual=ManualRef(chain="bsc", tx_hash=rescue, log_index=4, amount=AMOUNT), gas_charged=0)
    manual = books(**(manual.__dict__ | {"credits": (AMOUNT - FEE,)}))
    trace = TraceResult(
        chain="bsc",
        tx_hash=rescue,
        found=True,
        succeeded=True,
        confirmations=5,
        required_confirmations=3,
        transfers=[token_transfer(rescue, USDT, HOT, AMOUNT, log_index=4)],
    )
    ok = compare(manual, ChainView(manual=trace), hot_wallet=HOT)
    assert ok.status is ReconStatus.OK and "off-engine transfer 0xcccccccc…cccc moved 100 USDT as booked" in ok.checked
    elsewhere = trace.model_copy(update={"transfers": [token_transfer(rescue, USDT, ELSEWHERE, AMOUNT - 3, 4)]})
    bad = compare(manual, ChainView(manual=elsewhere), hot_wallet=HOT)
    assert bad.status is ReconStatus.MISMATCH
    assert any("not the hot wallet" in p for p in bad.problems)
    assert any(
        "moved 99999999999999999997 base units, recorded 100000000000000000000: off by -3" in p for p in bad.problems
    )


def test_the_network_cost_converts_at_the_recorded_prices_in_integers() -> None:
    # 0.213 USDT at 1 USD = 0.213 USD = 0.000355 BNB at 600 USD
    assert (
        gas_charged_native(GAS, decimals=18, price_usd=Decimal("1"), native_decimals=18, native_price_usd=BNB_PRICE)
        == 355 * 10**12
    )
    # 6-decimal USDT, rounded down: 1 base unit of USDT (1e-6 USD) is 1/600 of 1e-6 BNB
    assert gas_charged_native(
        1, decimals=6, price_usd=Decimal("1"), native_decimals=18, native_price_usd=BNB_PRICE
    ) == (10**12 // 600)
    assert gas_charged_native(0, decimals=None, price_usd=None, native_decimals=18, native_price_usd=None) == 0
    assert gas_charged_native(5, decimals=18, price_usd=None, native_decimals=18, native_price_usd=BNB_PRICE) is None


# --- the command line's input -------------------------------------------------------------------------


def command() -> typer.Typer:
    """``recovery fees`` with the command registered as cli/fees.py registers it."""
    app = typer.Typer()
    app.command("reconcile")(reconcile)
    app.command("noop")(lambda: None)  # a group, so that the command is called by name
    return app


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday"], "--from: expected a date such as 2026-01-31"),
        (["--to", "2026-13-01"], "--to: expected a date such as 2026-01-31"),
        (
            ["--from", "2026-02-01", "--to", "2026-02-01"],
            "--to is exclusive, so one day is --from 2026-02-01 --to 2026-02-02",
        ),
    ],
)
def test_bad_input_exits_2_saying_what_to_do(args: list[str], message: str) -> None:
    result = CliRunner().invoke(command(), ["reconcile", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_dates_are_utc_midnights_and_datetimes_keep_their_zone() -> None:
    assert period("2026-01-01", "2026-01-02T06:00:00+02:00") == (
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 2, 4, tzinfo=UTC),
    )
    assert period(None, None) == (None, None)


def test_a_recovered_row_that_disagrees_with_its_parts_is_a_mismatch() -> None:
    """The ledger against itself: the settlement's ``recovered`` row is credited + refunded + fee + gas."""
    credit_only, no_gas = ChainView(txs={}), {"credits": (AMOUNT - FEE,), "gas_charged": 0}
    assert compare(books(recovered=AMOUNT, **no_gas), credit_only, hot_wallet=HOT).status is ReconStatus.OK
    wrong = compare(books(recovered=AMOUNT + 7, **no_gas), credit_only, hot_wallet=HOT)
    assert wrong.status is ReconStatus.MISMATCH
    assert any("`recovered` row says" in p and "off by -7 base units" in p for p in wrong.problems), wrong.problems
