"""The marketplace's events: accounts, orders and their later facts, outcomes; one sequence over everything.

The store becomes the system of record for what the features read. Accounts and orders are stored as first
sent; what happens to them later (a verification, a role change, a parcel shipped, a chargeback) is a new row
with its own time, never an edit. Reports stay in intake_reports and enforcements in the ledger's violations;
both gain the sequence number too.

Every row that the features read carries `seq`, taken from the one-row `event_counter` in the writing
transaction. The counter's row lock makes writers take numbers in commit order (SQLite serialises writers
anyway), so a worker that has read everything up to n and then sees m > n has missed nothing in between:
that is how each worker tails the store. Rows stored before this revision have no number; a worker reads
them when it starts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

APPEND_ONLY = ("market_accounts", "market_account_updates", "market_orders", "market_order_updates",
               "market_outcomes")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
SEQ = sa.BigInteger()


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _received() -> list[sa.Column]:
    return [sa.Column("seq", SEQ, nullable=False, unique=True),
            sa.Column("received_at", _when(), nullable=False),
            sa.Column("received_by", sa.String(256), nullable=False)]


def upgrade() -> None:
    op.create_table("event_counter", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("value", SEQ, nullable=False))
    op.execute("INSERT INTO event_counter (id, value) VALUES (1, 0)")
    op.create_table(
        "market_accounts",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        *_received(),
        sa.CheckConstraint("role IN ('buyer', 'seller')", name="ck_market_accounts_role"),
    )
    op.create_table(
        "market_account_updates",
        sa.Column("account_id", sa.String(128), primary_key=True),
        sa.Column("field", sa.String(16), primary_key=True),
        sa.Column("at", _when(), primary_key=True),
        sa.Column("value", sa.String(16), nullable=False),
        *_received(),
        sa.CheckConstraint("field IN ('verified', 'role')", name="ck_market_account_updates_field"),
    )
    op.create_table(
        "market_orders",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("buyer_id", sa.String(128), nullable=False),
        sa.Column("seller_id", sa.String(128), nullable=False),
        sa.Column("show_id", sa.String(128)),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("ship_by", _when(), nullable=False),
        *_received(),
    )
    op.create_index("ix_market_orders_seller_id", "market_orders", ["seller_id"])
    op.create_table(
        "market_order_updates",
        sa.Column("order_id", sa.String(128), primary_key=True),
        sa.Column("fact", sa.String(16), primary_key=True),
        sa.Column("at", _when(), nullable=False),
        *_received(),
        sa.CheckConstraint("fact IN ('shipped', 'delivered', 'cancelled', 'refunded', 'fraud')",
                           name="ck_market_order_updates_fact"),
    )
    op.create_table(
        "market_outcomes",
        sa.Column("report_id", sa.String(128), primary_key=True),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("severity", sa.String(16)),
        sa.Column("fraud_confirmed", sa.Boolean, nullable=False),
        sa.Column("resolved_at", _when(), nullable=False),
        *_received(),
    )
    for table in ("intake_reports", "violations"):
        op.add_column(table, sa.Column("seq", SEQ, nullable=True))
        op.create_index(f"ix_{table}_seq", table, ["seq"], unique=True)
    # A score given while the report named an account or order not seen yet: rescored when they arrive.
    op.add_column("report_scores", sa.Column("cold_start", sa.Boolean, nullable=True))
    _refuse_changes()


def _refuse_changes() -> None:
    """The new history tables are append-only too (the PostgreSQL function comes from revision 0001)."""
    if op.get_bind().dialect.name == "postgresql":
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
    with op.batch_alter_table("report_scores") as batch:
        batch.drop_column("cold_start")
    for table in ("intake_reports", "violations"):
        op.drop_index(f"ix_{table}_seq", table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("seq")
    for table in reversed(APPEND_ONLY):
        op.drop_table(table)
    op.drop_table("event_counter")
