"""An order need not promise a shipping deadline (issue 16: a payment or a digital good ships nothing), so
market_orders.ship_by may be empty; such an order is never late.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _when() -> sa.types.TypeEngine:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("market_orders") as batch:
        batch.alter_column("ship_by", existing_type=_when(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("market_orders") as batch:  # fails while an order without a deadline is stored
        batch.alter_column("ship_by", existing_type=_when(), nullable=False)
