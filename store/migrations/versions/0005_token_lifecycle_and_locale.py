"""API tokens that expire and are revoked (users and staff), each user's language, the date by which a
timeline event expects the user to act, and a case's view version.

``cases.view_version`` moves whenever anything a user's case read shows changes: the case row itself and the
rows of its timeline, handling, ownership requirement and refund. Triggers move it, so no writer can forget
to, and the API keeps each case's rendered answer until its version moves (api/case_views.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import store.db

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


CHILDREN = ("case_events", "case_handling", "ownership_requirements", "ledger_refunds")

VIEW_VERSION_SQLITE = [
    "CREATE TRIGGER cases_view_version AFTER UPDATE ON cases WHEN NEW.view_version = OLD.view_version "
    "BEGIN UPDATE cases SET view_version = OLD.view_version + 1 WHERE case_id = NEW.case_id; END",
    *(
        f"CREATE TRIGGER {table}_{verb.lower()}_view_version AFTER {verb} ON {table} "
        f"BEGIN UPDATE cases SET view_version = view_version + 1 WHERE case_id = NEW.case_id; END"
        for table in CHILDREN
        for verb in ("INSERT", "UPDATE")
    ),
]
VIEW_VERSION_POSTGRESQL = [
    "CREATE FUNCTION cases_view_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "IF NEW.view_version = OLD.view_version THEN NEW.view_version := OLD.view_version + 1; END IF; "
    "RETURN NEW; END $$",
    "CREATE TRIGGER cases_view_version BEFORE UPDATE ON cases FOR EACH ROW EXECUTE FUNCTION cases_view_version()",
    "CREATE FUNCTION case_child_view_version() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE cases SET view_version = view_version + 1 WHERE case_id = NEW.case_id; RETURN NULL; END $$",
    *(
        f"CREATE TRIGGER {table}_view_version AFTER INSERT OR UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION case_child_view_version()"
        for table in CHILDREN
    ),
]


def upgrade() -> None:
    # add_column only (no table rebuild on SQLite): existing tokens keep working and never expire.
    for table in ("users", "staff_members"):
        op.add_column(table, sa.Column("token_expires_at", store.db.UTCDateTime(), nullable=True))
        op.add_column(table, sa.Column("token_revoked_at", store.db.UTCDateTime(), nullable=True))
    op.add_column("case_events", sa.Column("due_at", store.db.UTCDateTime(), nullable=True))
    op.add_column("cases", sa.Column("view_version", sa.Integer(), nullable=False, server_default="0"))
    statements = {"sqlite": VIEW_VERSION_SQLITE, "postgresql": VIEW_VERSION_POSTGRESQL}
    for statement in statements.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    op.add_column(
        "users",
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="en"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER cases_view_version ON cases")
        for table in CHILDREN:
            op.execute(f"DROP TRIGGER {table}_view_version ON {table}")
        op.execute("DROP FUNCTION cases_view_version()")
        op.execute("DROP FUNCTION case_child_view_version()")
    else:
        op.execute("DROP TRIGGER cases_view_version")
        for table in CHILDREN:
            for verb in ("insert", "update"):
                op.execute(f"DROP TRIGGER {table}_{verb}_view_version")
    op.drop_column("cases", "view_version")
    op.drop_column("case_events", "due_at")
    op.drop_column("users", "locale")
    for table in ("users", "staff_members"):
        op.drop_column(table, "token_revoked_at")
        op.drop_column(table, "token_expires_at")
