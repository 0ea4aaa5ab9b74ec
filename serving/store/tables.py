"""Docket's persisted tables, as SQLAlchemy Core: the enforcement ledger and its audit trail.

The schema itself is created by the Alembic migrations (serving/migrations), never
from this metadata at run time; these objects are what queries are written against,
so a column added in a migration is added here too.

History tables are append-only: rows are INSERTed and never changed or removed
(the migrations back this with triggers). A violation's current decision is its
latest decision row; an appeal or a remedial step is an event row, not an edit.
"""
from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

# BIGINT ids on PostgreSQL; SQLite only autoincrements a column declared INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer, "sqlite")
# Python None as SQL NULL rather than the JSON text 'null'.
NullableJSON = JSON(none_as_null=True)

CAUSES = ("recorded", "remedial", "appeal")
EVENT_KINDS = ("appeal", "remedial")


class UTCDateTime(TypeDecorator):
    """A timestamp that goes in as aware UTC and always comes back as aware UTC.

    SQLite keeps no zone, so values are converted to UTC before storing and
    labelled UTC on the way out; a naive datetime is refused rather than guessed.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: Docket stores timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

accounts = Table(
    "accounts", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("first_recorded_at", UTCDateTime, nullable=False),
    CheckConstraint("role IN ('buyer', 'seller')", name="ck_accounts_role"),
)

violations = Table(
    "violations", metadata,
    Column("violation_id", String(128), primary_key=True),
    Column("account_id", String(128), ForeignKey("accounts.account_id"), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("family", String(32), nullable=False),
    Column("category", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("recorded_by", String(256), nullable=False),
    Column("source_report_id", String(128), nullable=True),
    Column("model_versions", NullableJSON, nullable=True),
    Column("seq", BigInteger, nullable=True, unique=True),  # the store's event sequence (migration 0003)
)

decisions = Table(
    "decisions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("violation_id", String(128), ForeignKey("violations.violation_id"), nullable=False, index=True),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("decided_by", String(256), nullable=False),
    Column("cause", String(16), nullable=False),
    Column("actions", JSON, nullable=False),
    Column("account_health", String(16), nullable=False),
    Column("reasons", JSON, nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("rung", String(64), nullable=False),
    Column("points", Integer, nullable=False),
    # The record the mapper was given (PastViolations as JSON), so the decision can be re-run.
    Column("history", JSON, nullable=False),
    CheckConstraint("cause IN ('recorded', 'remedial', 'appeal')", name="ck_decisions_cause"),
)

violation_events = Table(
    "violation_events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("violation_id", String(128), ForeignKey("violations.violation_id"), nullable=False, index=True),
    Column("at", UTCDateTime, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("value", String(64), nullable=False),  # upheld | overturned, or the remedial completion time (ISO)
    Column("actor", String(256), nullable=False),
    Column("why", Text, nullable=True),
    CheckConstraint("kind IN ('appeal', 'remedial')", name="ck_violation_events_kind"),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(64), nullable=False),
    Column("entity", String(64), nullable=False),
    Column("entity_id", String(128), nullable=False, index=True),
    Column("before", NullableJSON, nullable=True),
    Column("after", NullableJSON, nullable=True),
    Column("why", Text, nullable=True),
)

APPEND_ONLY = (accounts, violations, decisions, violation_events, audit_events)


# ---------------------------------------------------------------------------
# The triage queue (migration 0002). Reports, scores, case links, outcomes and
# notifications are append-only history; `cases`, `alerts` and `api_keys` hold
# current state, and every change to them is an audit event.

intake_reports = Table(
    "intake_reports", metadata,
    Column("report_id", String(128), primary_key=True),
    Column("received_at", UTCDateTime, nullable=False),
    Column("received_by", String(256), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("reporter_id", String(128), nullable=True),
    Column("reporter_type", String(32), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("subject_id", String(128), nullable=False, index=True),
    Column("show_id", String(128), nullable=True),
    Column("order_id", String(128), nullable=True),
    Column("category", String(64), nullable=False),
    Column("family", String(32), nullable=False),
    Column("description", Text, nullable=False),
    Column("evidence", NullableJSON, nullable=True),
    Column("seq", BigInteger, nullable=True, unique=True),  # the store's event sequence (migration 0003)
)

report_scores = Table(
    "report_scores", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("report_id", String(128), ForeignKey("intake_reports.report_id"), nullable=False, index=True),
    Column("scored_at", UTCDateTime, nullable=False),
    Column("scored_by", String(16), nullable=False),  # model | rules
    Column("p_valid", Float, nullable=True),
    Column("severity", String(16), nullable=True),
    Column("fraud_risk", Float, nullable=True),
    Column("priority", Float, nullable=False),
    Column("detail", JSON, nullable=False),  # severity_probabilities, reasons, model_versions, cold_start
    Column("cold_start", Boolean, nullable=True),  # named an account or order not seen yet (migration 0003)
    Index("ix_report_scores_scored_by", "scored_by", "id"),  # the sweep's rescoring reads (migration 0008)
    Index("ix_report_scores_cold_start", "cold_start", "id"),
)

cases = Table(
    "cases", metadata,
    Column("case_id", String(160), primary_key=True),
    Column("kind", String(16), nullable=False),  # report | spike
    Column("opened_at", UTCDateTime, nullable=False),
    Column("subject_id", String(128), nullable=False, index=True),
    Column("family", String(32), nullable=False),
    Column("category", String(64), nullable=False),
    Column("deadline_at", UTCDateTime, nullable=False),
    Column("goal_hours", Float, nullable=False),
    Column("base_priority", Float, nullable=False),
    Column("tier", Integer, nullable=False),
    Column("status", String(16), nullable=False, index=True),  # open | claimed | resolved | merged
    Column("claimed_by", String(256), nullable=True),
    Column("claim_expires_at", UTCDateTime, nullable=True),
    Column("version", Integer, nullable=False),
    Column("merged_into", String(160), nullable=True),
    Index("ix_cases_rank", "status", "tier", "base_priority"),  # a queue page's bounded read (migration 0007)
    Index("ix_cases_backlog", "status", "family", "opened_at", "deadline_at"),  # the metrics' backlog (0008)
)

case_reports = Table(
    "case_reports", metadata,
    Column("case_id", String(160), ForeignKey("cases.case_id"), primary_key=True),
    Column("report_id", String(128), ForeignKey("intake_reports.report_id"), primary_key=True, index=True),
    Column("added_at", UTCDateTime, nullable=False),
)

alerts = Table(
    "alerts", metadata,
    Column("alert_key", String(200), primary_key=True),
    Column("detected_at", UTCDateTime, nullable=False),
    Column("case_id", String(160), ForeignKey("cases.case_id"), nullable=False),
    Column("status", String(16), nullable=False),  # open | closed
    Column("detail", JSON, nullable=False),
)

review_outcomes = Table(
    "review_outcomes", metadata,
    Column("report_id", String(128), ForeignKey("intake_reports.report_id"), primary_key=True),
    Column("case_id", String(160), ForeignKey("cases.case_id"), nullable=False),
    Column("valid", Boolean, nullable=False),
    Column("severity", String(16), nullable=True),
    Column("fraud_confirmed", Boolean, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=False),
    Column("resolved_by", String(256), nullable=False),
    Column("notes", Text, nullable=True),
)

notifications = Table(
    "notifications", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("reporter_id", String(128), nullable=False, index=True),
    Column("report_id", String(128), ForeignKey("intake_reports.report_id"), nullable=False),
    Column("case_id", String(160), ForeignKey("cases.case_id"), nullable=False),
    Column("message", Text, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("key_id", String(32), primary_key=True),
    Column("key_hash", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(256), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),  # migration 0006; None: never expires
)


# ---------------------------------------------------------------------------
# The marketplace's events (migration 0003): what the features read, as first sent, with later facts as
# rows of their own. `seq` comes from event_counter in the writing transaction (see serving/market/event_store.py).

event_counter = Table(
    "event_counter", metadata,
    Column("id", Integer, primary_key=True),
    Column("value", BigInteger, nullable=False),
)


def _received() -> list[Column]:
    return [Column("seq", BigInteger, nullable=False, unique=True),
            Column("received_at", UTCDateTime, nullable=False),
            Column("received_by", String(256), nullable=False)]


market_accounts = Table(
    "market_accounts", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("role", String(16), nullable=False),
    Column("verified", Boolean, nullable=False),
    *_received(),
)

market_account_updates = Table(
    "market_account_updates", metadata,
    Column("account_id", String(128), primary_key=True),
    Column("field", String(16), primary_key=True),  # verified | role
    Column("at", UTCDateTime, primary_key=True),
    Column("value", String(16), nullable=False),
    *_received(),
)

market_orders = Table(
    "market_orders", metadata,
    Column("order_id", String(128), primary_key=True),
    Column("buyer_id", String(128), nullable=False, index=True),  # migration 0005
    Column("seller_id", String(128), nullable=False, index=True),
    Column("show_id", String(128), nullable=True),
    Column("amount", Float, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ship_by", UTCDateTime, nullable=True),  # migration 0009: nothing shipped, never late
    *_received(),
)

market_order_updates = Table(
    "market_order_updates", metadata,
    Column("order_id", String(128), primary_key=True),
    Column("fact", String(16), primary_key=True),  # shipped | delivered | cancelled | refunded | fraud
    Column("at", UTCDateTime, nullable=False),
    *_received(),
)

market_outcomes = Table(
    "market_outcomes", metadata,
    Column("report_id", String(128), primary_key=True),
    Column("valid", Boolean, nullable=False),
    Column("severity", String(16), nullable=True),
    Column("fraud_confirmed", Boolean, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=False),
    *_received(),
)


# ---------------------------------------------------------------------------
# The investigator console's sign-ins (migration 0004): current state, one row per signed-in browser. Only a
# SHA-256 of the session token is stored (the cookie holds the token, never the API key); sign-in and sign-out
# are audit events.

console_sessions = Table(
    "console_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("key_id", String(32), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
)
