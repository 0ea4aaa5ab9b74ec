"""Orders found by their buyer: an account's timeline reads the orders it bought as well as those it sold
(sellers have had an index since 0003); without one, a buyer's timeline scans every order.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_market_orders_buyer_id", "market_orders", ["buyer_id"])


def downgrade() -> None:
    op.drop_index("ix_market_orders_buyer_id", "market_orders")
