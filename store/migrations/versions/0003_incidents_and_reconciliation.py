"""Platform-fault incidents (store/incidents.py) and reconciliation results (store/reconciliation.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.db

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "case_reconciliation",
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("gas_charged_native", store.db.Amount(), nullable=True),
        sa.Column("gas_spent_native", store.db.Amount(), nullable=True),
        sa.Column("checked_at", store.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("case_id"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("asset", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("starts_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("ends_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("compensation_usd", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("declared_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("declared_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("closed_at", store.db.UTCDateTime(), nullable=True),
        sa.Column("closed_by", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.CheckConstraint("starts_at < ends_at", name="ck_incidents_window"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "reconciliation_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("since", store.db.UTCDateTime(), nullable=True),
        sa.Column("until", store.db.UTCDateTime(), nullable=True),
        sa.Column("started_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", store.db.UTCDateTime(), nullable=True),
        sa.Column("cases_checked", sa.Integer(), nullable=False),
        sa.Column("mismatches", sa.Integer(), nullable=False),
        sa.Column("uncheckable", sa.Integer(), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("reconciliation_runs")
    op.drop_table("incidents")
    op.drop_table("case_reconciliation")
