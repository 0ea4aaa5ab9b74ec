"""The enforcement ledger: accounts, violations, decisions, violation events and the audit trail.

Written out by hand (not imported from serving.store.tables) so this revision stays
what it was when later revisions change the tables. Runs on SQLite and PostgreSQL.
The history tables get triggers that refuse UPDATE and DELETE: append-only is
a property of the database, not only of the code that happens to use it.

Revision ID: 0001
Revises:
Create Date: 2025-11-21
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = ("accounts", "violations", "decisions", "violation_events", "audit_events")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("first_recorded_at", _when(), nullable=False),
        sa.CheckConstraint("role IN ('buyer', 'seller')", name="ck_accounts_role"),
    )
    op.create_table(
        "violations",
        sa.Column("violation_id", sa.String(128), primary_key=True),
        sa.Column("account_id", sa.String(128), sa.ForeignKey("accounts.account_id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("occurred_at", _when(), nullable=False),
        sa.Column("recorded_at", _when(), nullable=False),
        sa.Column("recorded_by", sa.String(256), nullable=False),
        sa.Column("source_report_id", sa.String(128), nullable=True),
        sa.Column("model_versions", sa.JSON(), nullable=True),
    )
    op.create_index("ix_violations_account_id", "violations", ["account_id"])
    op.create_table(
        "decisions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("violation_id", sa.String(128), sa.ForeignKey("violations.violation_id"), nullable=False),
        sa.Column("decided_at", _when(), nullable=False),
        sa.Column("decided_by", sa.String(256), nullable=False),
        sa.Column("cause", sa.String(16), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("account_health", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("policy_version", sa.String(64), nullable=False),
        sa.Column("rung", sa.String(64), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.CheckConstraint("cause IN ('recorded', 'remedial', 'appeal')", name="ck_decisions_cause"),
    )
    op.create_index("ix_decisions_violation_id", "decisions", ["violation_id"])
    op.create_table(
        "violation_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("violation_id", sa.String(128), sa.ForeignKey("violations.violation_id"), nullable=False),
        sa.Column("at", _when(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("why", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('appeal', 'remedial')", name="ck_violation_events_kind"),
    )
    op.create_index("ix_violation_events_violation_id", "violation_events", ["violation_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", _when(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("entity", sa.String(64), nullable=False),
        sa.Column("entity_id", sa.String(128), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("why", sa.Text(), nullable=True),
    )
    op.create_index("ix_audit_events_entity_id", "audit_events", ["entity_id"])
    _refuse_changes()


def _refuse_changes() -> None:
    """Triggers that make UPDATE and DELETE on the history tables fail with a message naming the table."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION docket_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'table % is append-only: % refused', TG_TABLE_NAME, TG_OP;
            END $$
        """)
        for table in APPEND_ONLY:
            op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION docket_append_only()")
        return
    for table in APPEND_ONLY:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                       f"BEGIN SELECT RAISE(ABORT, 'table {table} is append-only: {verb} refused'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute("DROP FUNCTION IF EXISTS docket_append_only()")
    for table in reversed(APPEND_ONLY):
        op.drop_table(table)
