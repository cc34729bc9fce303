"""Timeline messages and case reasons as message ids with their values, rendered in the reader's language
(docs/i18n.md). Nullable: events and reasons written before keep their English text only.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # add_column only (no table rebuild on SQLite, no trigger touched)
    op.add_column("case_events", sa.Column("message_id", sa.Text(), nullable=True))
    op.add_column("case_events", sa.Column("message_params", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("reason_id", sa.Text(), nullable=True))
    op.add_column("cases", sa.Column("reason_params", sa.Text(), nullable=True))


def downgrade() -> None:
    # drop_column only (SQLite's ALTER TABLE DROP COLUMN): a rebuilt table would lose 0005's triggers
    op.drop_column("cases", "reason_params")
    op.drop_column("cases", "reason_id")
    op.drop_column("case_events", "message_params")
    op.drop_column("case_events", "message_id")
