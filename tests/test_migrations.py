"""Schema migrations: a fresh database and one created by the last landed schema (with data in it) both reach
head, nothing is lost, and the models agree with what the migrations built. Both databases."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from store import audit, fee_ledger, ledger, migrate
from store.db import make_engine, private_schema
from store.fee_ledger import CaseRef, FeeKind, FeeLedgerEntry, Route
from store.schema import init_db
from tests.db_fixtures import DB_BACKENDS, POSTGRES_URL

FIXTURES = Path(__file__).parent / "fixtures"
HUGE = 2**256 - 1
AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database of the parametrized backend (a private schema on PostgreSQL)."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
        yield engine
        engine.dispose()
        return
    assert POSTGRES_URL is not None
    with private_schema(POSTGRES_URL, prefix="mig") as engine:
        yield engine


backends = pytest.mark.parametrize("empty_engine", DB_BACKENDS, indirect=True)


def _landed(engine: Engine) -> None:
    """The schema create_all made at the last landed commit before migrations, from the frozen dump."""
    sql = (FIXTURES / f"landed_schema_a157342.{engine.dialect.name}.sql").read_text()
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            raw.driver_connection.executescript(sql)  # type: ignore[union-attr]
        else:
            cursor = raw.cursor()
            cursor.execute(sql)
            cursor.close()
            raw.commit()
    finally:
        raw.close()


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection=connection, opts=migrate.configure_options(connection))
        diff = compare_metadata(context, migrate.target_metadata())
    # SQLite cannot reflect the expression index on lower(deposit_address): autogenerate never sees it there
    return [d for d in diff if "ix_users_deposit_address_lower" not in repr(d)]


@backends
def test_fresh_database_reaches_head_and_matches_the_models(empty_engine: Engine) -> None:
    init_db(empty_engine)
    with empty_engine.connect() as connection:
        assert migrate.current_heads(connection) == (migrate.head_revision(),)
    assert _schema_diff(empty_engine) == []
    init_db(empty_engine)  # idempotent


LANDED_ROWS = [
    "INSERT INTO users (user_id, deposit_index, deposit_address, token_hash, created_at) "
    "VALUES ('alice', 1, '0xaa', 'h1', '2026-11-01 10:00:00')",
    "INSERT INTO cases (chain, tx_hash, log_index, case_id, user_id, status, pattern, reason, asset, decimals, "
    "amount, fee, gas, credited, fee_usd, created_at, updated_at) VALUES ('bsc', '0x01', 0, 'case-auto', 'alice', "
    "'COMPLETED', 'WRONG_NETWORK_SAME_KEY', '', 'USDT', 18, '100000000000000000000', '1000000000000000000', "
    "'10000000000000000', '98990000000000000000', '1.00', '2026-11-01 10:00:00', '2026-11-01 10:05:00')",
    "INSERT INTO cases (chain, tx_hash, log_index, case_id, user_id, status, pattern, reason, asset, decimals, "
    "amount, created_at, updated_at) VALUES ('ethereum', '0x02', 1, 'case-manual', 'alice', 'COMPLETED', "
    "'UNLISTED_TOKEN', '', 'TOK', 18, :huge, '2026-11-02 10:00:00', '2026-11-02 10:00:00')",
    "INSERT INTO case_handling (case_id, tier, approvals_needed, sla_state, paused, updated_at) "
    "VALUES ('case-manual', 'tier1', 1, 'on_track', false, '2026-11-02 10:00:00')",
    "INSERT INTO fee_entries (idempotency_key, case_id, user_id, chain, asset, fee, gas, fee_usd, created_at) "
    "VALUES ('fee:bsc:0x01:0', 'case-auto', 'alice', 'bsc', 'USDT', '1000000000000000000', '10000000000000000', "
    "'1.00', '2026-11-01 10:05:00')",
    "INSERT INTO fee_entries (idempotency_key, case_id, user_id, chain, asset, fee, gas, fee_usd, created_at) "
    "VALUES ('fee:ethereum:0x02:1', 'case-manual', 'alice', 'ethereum', 'TOK', :huge_fee, '7', '250.50', "
    "'2026-11-02 11:00:00')",
    "INSERT INTO ledger_credits (idempotency_key, case_id, user_id, asset, amount, created_at) VALUES "
    "('credit:bsc:0x01:0', 'case-auto', 'alice', 'USDT', '98990000000000000000', '2026-11-01 10:05:00')",
    "INSERT INTO audit_entries (case_id, key, engineer, action, attested, input_json, before_json, after_json, at) "
    "VALUES ('case-manual', 'approve-1', 'bob', 'approve', true, '{}', '{}', '{}', '2026-11-02 10:30:00')",
]


@backends
def test_landed_database_with_data_reaches_head_and_loses_nothing(empty_engine: Engine) -> None:
    _landed(empty_engine)
    huge_fee = HUGE // 3
    with empty_engine.begin() as conn:
        for statement in LANDED_ROWS:
            conn.execute(text(statement), {"huge": str(HUGE), "huge_fee": str(huge_fee)})
        before = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()
            for table in ("users", "cases", "case_handling", "ledger_credits", "audit_entries")
        }

    init_db(empty_engine)

    with empty_engine.connect() as conn:
        assert migrate.current_heads(conn) == (migrate.head_revision(),)
        after = {table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() for table in before}
        assert after == before
    assert _schema_diff(empty_engine) == []
    with Session(empty_engine) as session:
        case = session.exec(select(ledger.LedgerCredit)).one()
        assert case.amount == 98_990_000_000_000_000_000
        rows = session.exec(select(FeeLedgerEntry).order_by(FeeLedgerEntry.id)).all()  # type: ignore[arg-type]
        got = [(r.case_id, r.kind, r.amount, r.usd_micros, r.pattern, r.route, r.chain, r.asset) for r in rows]
        auto, manual = (
            ("WRONG_NETWORK_SAME_KEY", "automatic", "bsc", "USDT"),
            ("UNLISTED_TOKEN", "manual", "ethereum", "TOK"),
        )
        assert got == [
            ("case-auto", "charged", 10**18, 1_000_000, *auto),
            ("case-auto", "gas_charged", 10**16, None, *auto),
            ("case-auto", "recovered", 100 * 10**18, None, *auto),  # credited + fee + gas
            ("case-manual", "charged", huge_fee, 250_500_000, *manual),
            ("case-manual", "gas_charged", 7, None, *manual),
            ("case-manual", "recovered", huge_fee + 7, None, *manual),  # no credit: fee + gas
        ]
        assert [r.resolution_s for r in rows if r.kind == "charged"] == [300, 3600]
        huge_row = rows[3]
        assert huge_row.booked_at == datetime(2026, 11, 2, 11, 0, tzinfo=UTC)
        limbs = [huge_row.amount_l0, huge_row.amount_l1, huge_row.amount_l2]
        assert fee_ledger.join_limbs(limbs, huge_row.amount_hi or 0) == huge_fee
        # a retried settlement of a migrated case still finds it settled, with the booked figures
        booked = ledger.booked_settlement(session, case_id="case-auto", deposit_key="bsc:0x01:0", gas_native=0)
        assert (booked.fee, booked.gas, booked.credited) == (10**18, 10**16, 98_990_000_000_000_000_000)
    # the audit trail is still append-only after the migration
    with pytest.raises(DBAPIError), empty_engine.begin() as conn:
        conn.execute(text("UPDATE audit_entries SET engineer = 'mallory'"))
    with Session(empty_engine) as session:
        assert [e.engineer for e in audit.entries(session, case_id="case-manual")] == ["bob"]


def _entry(case_id: str, key: str, kind: FeeKind = FeeKind.CHARGED, amount: int = 5) -> FeeLedgerEntry:
    ref = CaseRef(case_id=case_id, user_id="alice", chain="bsc", pattern=None, route=Route.AUTOMATIC)
    return fee_ledger.entry(ref, kind=kind, key=key, asset="USDT", decimals=6, amount=amount, price_usd=Decimal(1))


@backends
def test_fee_ledger_rows_are_never_updated_or_deleted(empty_engine: Engine) -> None:
    init_db(empty_engine)
    with Session(empty_engine) as session:
        session.add(_entry("case-1", "case-1:charged", amount=HUGE))
        session.commit()
    for statement in ("UPDATE fee_ledger SET amount = '1'", "DELETE FROM fee_ledger", "UPDATE fee_ledger SET note='x'"):
        with pytest.raises(DBAPIError, match="append-only"), empty_engine.begin() as conn:
            conn.execute(text(statement))
    if empty_engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), empty_engine.begin() as conn:
            conn.execute(text("TRUNCATE fee_ledger"))
    with Session(empty_engine) as session:
        [row] = session.exec(select(FeeLedgerEntry)).all()
        assert (row.amount, row.note) == (HUGE, None)


@backends
def test_a_second_charge_is_refused_by_the_database(empty_engine: Engine) -> None:
    """Not only the idempotency key: a charge under any other key is refused by the partial unique index."""
    init_db(empty_engine)
    with Session(empty_engine) as session:
        session.add(_entry("case-1", "case-1:charged"))
        session.add(_entry("case-1", "case-1:waived", kind=FeeKind.WAIVED))
        session.commit()
        session.add(_entry("case-1", "some-other-key", amount=7))
        with pytest.raises(IntegrityError):
            session.commit()
        session.rollback()
        session.add(_entry("case-1", "case-1:charged", kind=FeeKind.QUOTED))
        with pytest.raises(IntegrityError):
            session.commit()


@backends
def test_workers_starting_together_migrate_once(empty_engine: Engine) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            init_db(empty_engine)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with empty_engine.connect() as conn:
        assert migrate.current_heads(conn) == (migrate.head_revision(),)
        assert conn.execute(text(f"SELECT count(*) FROM {migrate.VERSION_TABLE}")).scalar() == 1
