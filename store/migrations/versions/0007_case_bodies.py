"""Users' case reads kept rendered (store/case_bodies.py): the bodies, and the queue of cases to render that
triggers fill whenever a case's ``view_version`` moves (migration 0005's triggers move it) or its owner's language
changes, in the change's own transaction. Every existing case is queued here, so an upgraded database gets its
bodies rendered too.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UPSERT = (
    "INSERT INTO case_body_queue (case_id, view_version) VALUES (NEW.case_id, NEW.view_version) "
    "ON CONFLICT (case_id) DO UPDATE SET view_version = excluded.view_version"
)
_UPSERT_USERS_CASES = (
    "INSERT INTO case_body_queue (case_id, view_version) SELECT case_id, view_version FROM cases "
    "WHERE user_id = NEW.user_id ON CONFLICT (case_id) DO UPDATE SET view_version = excluded.view_version"
)
"""A user's every case, when their language changes: bodies are rendered in the owner's language."""
QUEUE_SQLITE = [
    f"CREATE TRIGGER cases_insert_body_queue AFTER INSERT ON cases BEGIN {_UPSERT}; END",
    "CREATE TRIGGER cases_update_body_queue AFTER UPDATE ON cases WHEN NEW.view_version <> OLD.view_version "
    f"BEGIN {_UPSERT}; END",
    "CREATE TRIGGER users_locale_body_queue AFTER UPDATE ON users WHEN NEW.locale <> OLD.locale "
    f"BEGIN {_UPSERT_USERS_CASES}; END",
]
QUEUE_POSTGRESQL = [
    f"CREATE FUNCTION case_body_queue() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {_UPSERT}; RETURN NULL; END $$",
    "CREATE TRIGGER cases_insert_body_queue AFTER INSERT ON cases FOR EACH ROW EXECUTE FUNCTION case_body_queue()",
    # not UPDATE OF view_version: that fires only for a column in the statement's SET list, and migration 0005's
    # BEFORE trigger moves it in most updates
    "CREATE TRIGGER cases_update_body_queue AFTER UPDATE ON cases FOR EACH ROW "
    "WHEN (NEW.view_version IS DISTINCT FROM OLD.view_version) EXECUTE FUNCTION case_body_queue()",
    "CREATE FUNCTION users_locale_body_queue() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    f"{_UPSERT_USERS_CASES}; RETURN NULL; END $$",
    "CREATE TRIGGER users_locale_body_queue AFTER UPDATE ON users FOR EACH ROW "
    "WHEN (NEW.locale IS DISTINCT FROM OLD.locale) EXECUTE FUNCTION users_locale_body_queue()",
]


def upgrade() -> None:
    op.create_table(
        "case_bodies",
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("locale", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.Column("renderer", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("etag", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name="fk_case_bodies_case", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id", "locale"),
    )
    op.create_index("ix_case_bodies_renderer", "case_bodies", ["renderer", "case_id"], unique=False)
    op.create_table(
        "case_body_queue",
        sa.Column("case_id", sa.String(length=255), nullable=False),
        sa.Column("view_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.case_id"], name="fk_case_body_queue_case", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("case_id"),
    )
    statements = {"sqlite": QUEUE_SQLITE, "postgresql": QUEUE_POSTGRESQL}
    for statement in statements.get(op.get_bind().dialect.name, []):
        op.execute(statement)
    op.execute("INSERT INTO case_body_queue (case_id, view_version) SELECT case_id, view_version FROM cases")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER users_locale_body_queue ON users")
        op.execute("DROP FUNCTION users_locale_body_queue()")
        op.execute("DROP TRIGGER cases_update_body_queue ON cases")
        op.execute("DROP TRIGGER cases_insert_body_queue ON cases")
        op.execute("DROP FUNCTION case_body_queue()")
    else:
        op.execute("DROP TRIGGER users_locale_body_queue")
        op.execute("DROP TRIGGER cases_update_body_queue")
        op.execute("DROP TRIGGER cases_insert_body_queue")
    op.drop_table("case_body_queue")
    op.drop_index("ix_case_bodies_renderer", table_name="case_bodies")
    op.drop_table("case_bodies")
