"""The append-only fee ledger (store/fee_ledger.py) replaces fee_entries.

Every fee_entries row (one per settled deposit: fee and gas charged) becomes three ledger rows, ``charged``
(with the seconds from the case's opening), ``gas_charged`` and ``recovered`` (credited or refunded + fee +
gas), keyed ``<case_id>:<kind>`` as the settlement now books them, with the case's pattern and route; the
fee's USD value is the one recorded at quote time, the price is unknown (it was not recorded). Then
fee_entries is dropped. ``fee_open_quotes`` starts empty (no quote was booked before the ledger). The
database refuses UPDATE and DELETE on the ledger (and TRUNCATE on PostgreSQL), and a second ``charged`` row
for a case (a partial unique index).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.db

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIMB = 10**12

APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER fee_ledger_no_{verb.lower()} BEFORE {verb} ON fee_ledger "
    "BEGIN SELECT RAISE(ABORT, 'fee ledger entries are append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION fee_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'fee ledger entries are append-only'; END $$",
    "CREATE TRIGGER fee_ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON fee_ledger "
    "FOR EACH STATEMENT EXECUTE FUNCTION fee_ledger_append_only()",
]


def _dialect() -> str:
    return op.get_context().dialect.name


def _limbs(value: int, count: int) -> tuple[list[int], int | None]:
    parts = []
    for _ in range(count):
        value, part = divmod(value, LIMB)
        parts.append(part)
    return parts, (value or None)


def _ledger_table() -> sa.Table:
    return sa.table(
        "fee_ledger",
        sa.column("idempotency_key", sa.String),
        sa.column("case_id", sa.String),
        sa.column("user_id", sa.String),
        sa.column("kind", sa.String),
        sa.column("chain", sa.String),
        sa.column("asset", sa.String),
        sa.column("decimals", sa.Integer),
        sa.column("amount", store.db.Amount()),
        sa.column("amount_l0", sa.BigInteger),
        sa.column("amount_l1", sa.BigInteger),
        sa.column("amount_l2", sa.BigInteger),
        sa.column("amount_hi", store.db.Amount()),
        sa.column("usd_micros", store.db.Amount()),
        sa.column("usd_l0", sa.BigInteger),
        sa.column("usd_l1", sa.BigInteger),
        sa.column("usd_hi", store.db.Amount()),
        sa.column("pattern", sa.String),
        sa.column("route", sa.String),
        sa.column("note", sa.Text),
        sa.column("resolution_s", sa.BigInteger),
        sa.column("booked_at", store.db.UTCDateTime()),
    )


def _row(old: sa.Row, kind: str, amount: int, usd_micros: int | None) -> dict[str, object]:
    resolution = None
    if kind == "charged" and old.opened_at is not None:
        resolution = max(0, int((_aware(old.created_at) - _aware(old.opened_at)).total_seconds()))
    limbs, hi = _limbs(amount, 3)
    usd_limbs, usd_hi = _limbs(usd_micros or 0, 2)
    return {
        "idempotency_key": f"{old.case_id}:{kind}",
        "case_id": old.case_id,
        "user_id": old.user_id,
        "kind": kind,
        "chain": old.chain,
        "asset": old.asset,
        "decimals": old.decimals,
        "amount": amount,
        "amount_l0": limbs[0],
        "amount_l1": limbs[1],
        "amount_l2": limbs[2],
        "amount_hi": hi,
        "usd_micros": usd_micros,
        "usd_l0": usd_limbs[0],
        "usd_l1": usd_limbs[1],
        "usd_hi": usd_hi,
        "pattern": old.pattern,
        "route": "manual" if old.manual else "automatic",
        "note": "migrated from fee_entries (revision 0002)",
        "resolution_s": resolution,
        "booked_at": old.created_at,
    }


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def upgrade() -> None:
    op.create_table(
        "fee_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("asset", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=True),
        sa.Column("amount", store.db.Amount(), nullable=False),
        sa.Column("amount_l0", sa.BigInteger(), nullable=False),
        sa.Column("amount_l1", sa.BigInteger(), nullable=False),
        sa.Column("amount_l2", sa.BigInteger(), nullable=False),
        sa.Column("amount_hi", store.db.Amount(), nullable=True),
        sa.Column("usd_micros", store.db.Amount(), nullable=True),
        sa.Column("usd_l0", sa.BigInteger(), nullable=False),
        sa.Column("usd_l1", sa.BigInteger(), nullable=False),
        sa.Column("usd_hi", store.db.Amount(), nullable=True),
        sa.Column("price_usd", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("pattern", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("route", sa.String(length=40), nullable=True),
        sa.Column("tx_hash", sqlmodel.sql.sqltypes.AutoString(length=130), nullable=True),
        sa.Column("gas_used", store.db.Amount(), nullable=True),
        sa.Column("gas_price", store.db.Amount(), nullable=True),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("resolution_s", sa.BigInteger(), nullable=True),
        sa.Column("actor", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("booked_at", store.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key", name="uq_fee_ledger_idempotency_key"),
    )
    op.create_index("ix_fee_ledger_case_id", "fee_ledger", ["case_id"], unique=False)
    op.create_index("ix_fee_ledger_booked_at", "fee_ledger", ["booked_at"], unique=False)
    op.create_index(
        "uq_fee_ledger_one_charge_per_case",
        "fee_ledger",
        ["case_id"],
        unique=True,
        sqlite_where=sa.text("kind = 'charged'"),
        postgresql_where=sa.text("kind = 'charged'"),
    )
    op.create_index(
        "ix_fee_ledger_charges",
        "fee_ledger",
        ["booked_at", "chain", "asset", "pattern", "route", "resolution_s", "case_id"],
        unique=False,
        sqlite_where=sa.text("kind = 'charged'"),
        postgresql_where=sa.text("kind = 'charged'"),
    )
    op.create_index(
        "ix_fee_ledger_huge",
        "fee_ledger",
        ["booked_at"],
        unique=False,
        sqlite_where=sa.text("amount_hi IS NOT NULL OR usd_hi IS NOT NULL"),
        postgresql_where=sa.text("amount_hi IS NOT NULL OR usd_hi IS NOT NULL"),
    )
    op.create_index(
        "ix_fee_ledger_unpriced",
        "fee_ledger",
        ["booked_at", "chain", "asset", "kind", "pattern"],
        unique=False,
        sqlite_where=sa.text("usd_micros IS NULL"),
        postgresql_where=sa.text("usd_micros IS NULL"),
    )

    bind = op.get_bind()
    old_rows = bind.execute(
        sa.select(
            sa.column("case_id"),
            sa.column("user_id"),
            sa.column("chain"),
            sa.column("asset"),
            sa.column("fee", store.db.Amount()),
            sa.column("gas", store.db.Amount()),
            sa.column("fee_usd"),
            sa.column("created_at", store.db.UTCDateTime()),
            sa.select(sa.column("pattern"))
            .select_from(sa.table("cases"))
            .where(sa.text("cases.case_id = fee_entries.case_id"))
            .scalar_subquery()
            .label("pattern"),
            sa.select(sa.column("decimals"))
            .select_from(sa.table("cases"))
            .where(sa.text("cases.case_id = fee_entries.case_id"))
            .scalar_subquery()
            .label("decimals"),
            sa.select(sa.column("created_at", store.db.UTCDateTime()))
            .select_from(sa.table("cases"))
            .where(sa.text("cases.case_id = fee_entries.case_id"))
            .scalar_subquery()
            .label("opened_at"),
            sa.select(sa.column("amount", store.db.Amount()))
            .select_from(sa.table("ledger_credits"))
            .where(sa.text("ledger_credits.case_id = fee_entries.case_id"))
            .limit(1)
            .scalar_subquery()
            .label("credited"),
            sa.select(sa.column("amount", store.db.Amount()))
            .select_from(sa.table("ledger_refunds"))
            .where(sa.text("ledger_refunds.case_id = fee_entries.case_id"))
            .limit(1)
            .scalar_subquery()
            .label("refunded"),
            sa.exists()
            .select_from(sa.table("case_handling"))
            .where(sa.text("case_handling.case_id = fee_entries.case_id"))
            .label("manual"),
        )
        .select_from(sa.table("fee_entries"))
        .order_by(sa.column("created_at"))
    ).all()
    rows = []
    for old in old_rows:
        fee_usd = int((Decimal(old.fee_usd) * 10**6).to_integral_value(rounding=ROUND_HALF_EVEN))
        rows.append(_row(old, "charged", old.fee, fee_usd))
        rows.append(_row(old, "gas_charged", old.gas, None))
        recovered = int(old.credited or 0) + int(old.refunded or 0) + old.fee + old.gas
        rows.append(_row(old, "recovered", recovered, None))
    if rows:
        op.bulk_insert(_ledger_table(), rows)
    op.create_table(
        "fee_open_quotes",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("entry_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("asset", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("decimals", sa.Integer(), nullable=True),
        sa.Column("pattern", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("booked_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("amount", store.db.Amount(), nullable=False),
        sa.Column("amount_l0", sa.BigInteger(), nullable=False),
        sa.Column("amount_l1", sa.BigInteger(), nullable=False),
        sa.Column("amount_l2", sa.BigInteger(), nullable=False),
        sa.Column("amount_hi", store.db.Amount(), nullable=True),
        sa.Column("usd_micros", store.db.Amount(), nullable=True),
        sa.Column("usd_l0", sa.BigInteger(), nullable=False),
        sa.Column("usd_l1", sa.BigInteger(), nullable=False),
        sa.Column("usd_hi", store.db.Amount(), nullable=True),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.drop_index("ix_fee_entries_created_at", table_name="fee_entries")
    op.drop_index("ix_fee_entries_case_id", table_name="fee_entries")
    op.drop_table("fee_entries")

    statements = {"sqlite": APPEND_ONLY_SQLITE, "postgresql": APPEND_ONLY_POSTGRESQL}
    for statement in statements.get(_dialect(), []):
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError(
        "0002 cannot be undone without losing money facts: the fee ledger holds quotes, waivers, refunds, "
        "compensation and gas spent, which fee_entries cannot. Restore a backup taken before the upgrade."
    )
