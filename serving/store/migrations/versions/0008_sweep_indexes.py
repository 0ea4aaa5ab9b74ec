"""Indexes for what the service's sweep reads every few seconds, so an idle worker over 100,000 open cases stays
idle (issue 15). Measured on SQLite before them: the backlog the /metrics gauges show (unresolved cases per
family, the oldest, goals missed) scanned the cases table, 175 ms of a core each time (45 ms with its covering
index); finding the reports still scored by the rules or cold-started grouped every score to find each report's
newest. With these the sweep seeks the few candidates and probes each for a newer score.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""
from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cases_backlog", "cases", ["status", "family", "opened_at", "deadline_at"])
    op.create_index("ix_report_scores_scored_by", "report_scores", ["scored_by", "id"])
    op.create_index("ix_report_scores_cold_start", "report_scores", ["cold_start", "id"])


def downgrade() -> None:
    op.drop_index("ix_report_scores_cold_start", "report_scores")
    op.drop_index("ix_report_scores_scored_by", "report_scores")
    op.drop_index("ix_cases_backlog", "cases")
