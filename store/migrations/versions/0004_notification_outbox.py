"""The notification outbox (store/notifications.py): one row per timeline event of a case, delivered as a webhook.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.db

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("case_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("event_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", store.db.UTCDateTime(), nullable=False),
        sa.Column("retry_since", store.db.UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", store.db.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_attempt_at", store.db.UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("delivered_at", store.db.UTCDateTime(), nullable=True),
        sa.Column("dead_at", store.db.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("case_id", "seq", name="uq_notifications_case_seq"),
        sa.UniqueConstraint("webhook_id", name="uq_notifications_webhook_id"),
    )
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at"],
        unique=False,
        sqlite_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL AND dead_at IS NULL"),
    )
    op.create_index(
        "ix_notifications_undelivered",
        "notifications",
        ["case_id", "seq"],
        unique=False,
        sqlite_where=sa.text("delivered_at IS NULL"),
        postgresql_where=sa.text("delivered_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_undelivered", table_name="notifications")
    op.drop_index("ix_notifications_due", table_name="notifications")
    op.drop_table("notifications")
