"""The triage queue: intake reports, scores, cases, alerts, outcomes, notifications, API keys.

Reports, scores, case links, review outcomes and notifications are append-only
(the same triggers as the ledger's history tables); cases, alerts and API keys
hold current state and every change to them is an audit event.

Revision ID: 0002
Revises: 0001
Create Date: 2025-11-21
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

APPEND_ONLY = ("intake_reports", "report_scores", "case_reports", "review_outcomes", "notifications")
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "intake_reports",
        sa.Column("report_id", sa.String(128), primary_key=True),
        sa.Column("received_at", _when(), nullable=False),
        sa.Column("received_by", sa.String(256), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("reporter_id", sa.String(128)),
        sa.Column("reporter_type", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("show_id", sa.String(128)),
        sa.Column("order_id", sa.String(128)),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("evidence", sa.JSON),
    )
    op.create_index("ix_intake_reports_subject_id", "intake_reports", ["subject_id"])
    op.create_table(
        "report_scores",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(128), sa.ForeignKey("intake_reports.report_id"), nullable=False),
        sa.Column("scored_at", _when(), nullable=False),
        sa.Column("scored_by", sa.String(16), nullable=False),
        sa.Column("p_valid", sa.Float),
        sa.Column("severity", sa.String(16)),
        sa.Column("fraud_risk", sa.Float),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.CheckConstraint("scored_by IN ('model', 'rules')", name="ck_report_scores_scored_by"),
    )
    op.create_index("ix_report_scores_report_id", "report_scores", ["report_id"])
    op.create_table(
        "cases",
        sa.Column("case_id", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("opened_at", _when(), nullable=False),
        sa.Column("subject_id", sa.String(128), nullable=False),
        sa.Column("family", sa.String(32), nullable=False),
        sa.Column("category", sa.String(64), nullable=False),
        sa.Column("deadline_at", _when(), nullable=False),
        sa.Column("goal_hours", sa.Float, nullable=False),
        sa.Column("base_priority", sa.Float, nullable=False),
        sa.Column("tier", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("claimed_by", sa.String(256)),
        sa.Column("claim_expires_at", _when()),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("merged_into", sa.String(160)),
        sa.CheckConstraint("status IN ('open', 'claimed', 'resolved', 'merged')", name="ck_cases_status"),
    )
    op.create_index("ix_cases_status", "cases", ["status"])
    op.create_index("ix_cases_subject_id", "cases", ["subject_id"])
    op.create_table(
        "case_reports",
        sa.Column("case_id", sa.String(160), sa.ForeignKey("cases.case_id"), primary_key=True),
        sa.Column("report_id", sa.String(128), sa.ForeignKey("intake_reports.report_id"), primary_key=True),
        sa.Column("added_at", _when(), nullable=False),
    )
    op.create_index("ix_case_reports_report_id", "case_reports", ["report_id"])
    op.create_table(
        "alerts",
        sa.Column("alert_key", sa.String(200), primary_key=True),
        sa.Column("detected_at", _when(), nullable=False),
        sa.Column("case_id", sa.String(160), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
    )
    op.create_table(
        "review_outcomes",
        sa.Column("report_id", sa.String(128), sa.ForeignKey("intake_reports.report_id"), primary_key=True),
        sa.Column("case_id", sa.String(160), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("valid", sa.Boolean, nullable=False),
        sa.Column("severity", sa.String(16)),
        sa.Column("fraud_confirmed", sa.Boolean, nullable=False),
        sa.Column("resolved_at", _when(), nullable=False),
        sa.Column("resolved_by", sa.String(256), nullable=False),
        sa.Column("notes", sa.Text),
    )
    op.create_table(
        "notifications",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("at", _when(), nullable=False),
        sa.Column("reporter_id", sa.String(128), nullable=False),
        sa.Column("report_id", sa.String(128), sa.ForeignKey("intake_reports.report_id"), nullable=False),
        sa.Column("case_id", sa.String(160), sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_notifications_reporter_id", "notifications", ["reporter_id"])
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(32), primary_key=True),
        sa.Column("key_hash", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("revoked_at", _when()),
        sa.CheckConstraint("role IN ('intake', 'investigator', 'admin')", name="ck_api_keys_role"),
    )
    _refuse_changes()


def _refuse_changes() -> None:
    """Append-only tables: UPDATE and DELETE fail (the function comes from revision 0001 on PostgreSQL)."""
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
    for table in ("api_keys", "notifications", "review_outcomes", "alerts", "case_reports", "cases",
                  "report_scores", "intake_reports"):
        op.drop_table(table)
