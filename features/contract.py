"""The data contract: every raw table Docket reads, column by column.

The contract is data, not code paths: validation (`features.validate`), the
simulator and the generated docs (`docs/data-contract.md`) all read these
definitions, so a column cannot be added in one place and forgotten in another.
Timestamps are UTC; a timestamp without a zone is read as UTC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from features import vocabulary as V

# Column kinds. `str` is free text or an identifier, `category` a closed set.
KINDS = ("str", "category", "timestamp", "float", "int", "bool")

# Limits every text and time value must keep, in a data file and over the API alike. An identifier fits the
# store's String(128) id columns; free text is long enough for a report yet cannot fill a worker's memory (a
# 1 MiB id once made GET /queue pad every case id to its length). Times are absolute ISO-8601 within TIME_RANGE:
# earlier or later values are typos or probes, and some (year 1) do not survive time-zone arithmetic.
ID_MAX = 128
TEXT_MAX = 10_000
NAME_MAX = 128  # a person named in a request (actor), stored beside the key id in String(256)
TIME_RANGE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))  # [earliest, latest)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    doc: str
    nullable: bool = False
    allowed: tuple[str, ...] | None = None
    max_length: int | None = None  # `str` columns: ID_MAX unless stated (free text: TEXT_MAX)
    # None: a file must have the column. Otherwise what its absence means: the column is then read as all
    # false (bool) or all empty, so a payments data set need not invent a marketplace's shipping facts.
    absent: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "str" and self.max_length is None:
            object.__setattr__(self, "max_length", ID_MAX)


@dataclass(frozen=True)
class Table:
    name: str
    doc: str
    columns: tuple[Column, ...]
    key: str | None = None
    # (earlier, later): where both are set, earlier <= later must hold.
    time_order: tuple[tuple[str, str], ...] = ()
    # (flag, timestamp): the bool flag is true exactly when the timestamp is set.
    flag_times: tuple[tuple[str, str], ...] = ()
    required: bool = True
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


ACCOUNTS = Table(
    name="accounts",
    doc="Every buyer and seller account.",
    key="account_id",
    columns=(
        Column("account_id", "str", "Unique account identifier."),
        Column("created_at", "timestamp", "When the account was opened."),
        Column("role", "category", "Whether the account buys or sells.", allowed=V.ROLES),
        Column("verified", "bool", "Identity verification passed (seller badge / verified buyer).",
               absent="no verification programme: every account reads as not verified"),
    ),
)

ORDERS = Table(
    name="orders",
    doc="Every order, with its fulfilment timeline and its fraud label.",
    key="order_id",
    columns=(
        Column("order_id", "str", "Unique order identifier."),
        Column("buyer_id", "str", "Buying account (accounts.account_id)."),
        Column("seller_id", "str", "Selling account (accounts.account_id)."),
        Column("show_id", "str", "Livestream the order was placed in, if any.", nullable=True,
               absent="no livestreams: no order was placed in one"),
        Column("amount", "float", "Order value in USD, >= 0 (0 for a free order or a card check)."),
        Column("created_at", "timestamp", "When the order was placed."),
        Column("ship_by", "timestamp", "Shipping deadline promised to the buyer; empty when nothing is shipped "
               "(a digital good, a payment): such an order is never late.", nullable=True,
               absent="nothing is shipped: no order has a deadline, none is ever late"),
        Column("shipped_at", "timestamp", "When the parcel was handed to the carrier.", nullable=True,
               absent="no shipping facts (only with `ship_by` absent too: otherwise every order would be late)"),
        Column("delivered_at", "timestamp", "When the carrier reported delivery.", nullable=True,
               absent="no delivery facts"),
        Column("cancelled", "bool", "The order was cancelled.", absent="no order was cancelled"),
        Column("cancelled_at", "timestamp", "When it was cancelled (set exactly when cancelled).", nullable=True,
               absent="no order was cancelled"),
        Column("refunded", "bool", "The buyer was refunded.", absent="no order was refunded"),
        Column("refunded_at", "timestamp", "When the refund was issued (set exactly when refunded).", nullable=True,
               absent="no order was refunded"),
        Column("fraud", "bool", "Chargeback or confirmed fraud on this order."),
        Column(
            "fraud_known_at",
            "timestamp",
            "When the fraud label became known (chargeback date); set exactly when fraud. "
            "Features may only use the label after this time.",
            nullable=True,
        ),
    ),
    time_order=(
        ("created_at", "ship_by"),
        ("created_at", "shipped_at"),
        ("shipped_at", "delivered_at"),
        ("created_at", "cancelled_at"),
        ("created_at", "refunded_at"),
        ("created_at", "fraud_known_at"),
    ),
    flag_times=(("cancelled", "cancelled_at"), ("refunded", "refunded_at"), ("fraud", "fraud_known_at")),
)

REPORTS = Table(
    name="reports",
    doc="User and system reports about an account.",
    key="report_id",
    columns=(
        Column("report_id", "str", "Unique report identifier."),
        Column("created_at", "timestamp", "When the report was filed."),
        Column(
            "reporter_id",
            "str",
            "Reporting account; empty for automated_detection and rules_engine reports.",
            nullable=True,
        ),
        Column("reporter_type", "category", "Who filed the report.", allowed=V.REPORTER_TYPES),
        Column("channel", "category", "Where the report was filed.", allowed=V.CHANNELS),
        Column("subject_id", "str", "The reported account (accounts.account_id)."),
        Column("show_id", "str", "Livestream the report is about, if any.", nullable=True),
        Column("order_id", "str", "Order the report is about, if any (orders.order_id).", nullable=True),
        Column("category", "category", "What is reported; its family follows from it.", allowed=V.CATEGORIES),
        Column("description", "str", "Free text from the reporter (may be empty).", max_length=TEXT_MAX),
    ),
)

ENFORCEMENTS = Table(
    name="enforcements",
    doc="Past confirmed violations and the action taken for each.",
    key="violation_id",
    columns=(
        Column("violation_id", "str", "Unique violation identifier."),
        Column("account_id", "str", "Account that committed the violation."),
        Column("occurred_at", "timestamp", "When the violating behaviour happened."),
        Column("decided_at", "timestamp", "When the violation was confirmed and actioned."),
        Column("family", "category", "Issue family.", allowed=V.FAMILIES),
        Column("category", "category", "Violation category.", allowed=V.CATEGORIES),
        Column("severity", "category", "Confirmed severity.", allowed=V.SEVERITIES),
        Column("action", "category", "Main action taken.", allowed=V.ACTIONS),
        Column("action_days", "int", "Duration of a time-limited action in days; 0 when not time-limited."),
    ),
    time_order=(("occurred_at", "decided_at"),),
)

OUTCOMES = Table(
    name="outcomes",
    doc="Review outcome of each resolved report: the training labels.",
    key="report_id",
    columns=(
        Column("report_id", "str", "The report (reports.report_id)."),
        Column("valid", "bool", "The report described a real violation."),
        Column("severity", "category", "Severity of the violation; empty when not valid.", nullable=True, allowed=V.SEVERITIES),
        Column("fraud_confirmed", "bool", "Investigators confirmed fraud."),
        Column("resolved_at", "timestamp", "When the review closed; labels are known from then on."),
    ),
)

# Written by the simulator only: the probabilities it drew labels from. Never a feature.
TRUTH_REPORTS = Table(
    name="truth_reports",
    doc="Simulator ground truth per report: the probabilities the labels were drawn from.",
    key="report_id",
    required=False,
    columns=(
        Column("report_id", "str", "The report."),
        Column("p_valid", "float", "True probability the report is valid."),
        Column("p_severity_low", "float", "True P(severity = low | valid)."),
        Column("p_severity_medium", "float", "True P(severity = medium | valid)."),
        Column("p_severity_high", "float", "True P(severity = high | valid)."),
        Column("p_severity_critical", "float", "True P(severity = critical | valid)."),
        Column("p_fraud", "float", "True probability fraud is confirmed."),
        Column("scenario", "str", "Which latent mechanism generated the report."),
    ),
)

TRUTH_ORDERS = Table(
    name="truth_orders",
    doc="Simulator ground truth per order: the fraud probability the label was drawn from.",
    key="order_id",
    required=False,
    columns=(
        Column("order_id", "str", "The order."),
        Column("p_fraud", "float", "True probability the order is fraudulent."),
    ),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (ACCOUNTS, ORDERS, REPORTS, ENFORCEMENTS, OUTCOMES, TRUTH_REPORTS, TRUTH_ORDERS)
}



@dataclass(frozen=True)
class Task:
    """One use of a data set and the tables it cannot do without (the other tables count as empty)."""
    name: str
    tables: tuple[str, ...]
    commands: str


# What each use of a data set needs. A table's `required` means required by the full service; `docket validate`
# accepts any data set that serves at least one task and names the tasks it serves and what the others lack, so
# accounts and orders alone are a valid payments data set for evaluating order fraud.
TASKS: tuple[Task, ...] = (
    Task("order fraud", ("accounts", "orders"),
         "`docket evaluate`: the transaction fraud model against its baselines"),
    Task("report models", ("accounts", "reports", "outcomes"),
         "`docket evaluate`: validity, severity and report fraud, and the queue replay"),
    Task("the service", tuple(t.name for t in TABLES.values() if t.required),
         "`docket train`, `docket import`, `make serve`"),
)


def tasks_served(present: set[str] | frozenset[str]) -> tuple[list[Task], dict[str, list[str]]]:
    """The tasks a data set with these tables serves, and for each other task the tables it lacks."""
    served = [t for t in TASKS if set(t.tables) <= set(present)]
    lacking = {t.name: [n for n in t.tables if n not in present] for t in TASKS if t not in served}
    return served, lacking


# (table, column) -> (table, key column): references checked on load.
REFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("orders", "buyer_id", "accounts", "account_id"),
    ("orders", "seller_id", "accounts", "account_id"),
    ("reports", "subject_id", "accounts", "account_id"),
    ("reports", "reporter_id", "accounts", "account_id"),
    ("reports", "order_id", "orders", "order_id"),
    ("enforcements", "account_id", "accounts", "account_id"),
    ("outcomes", "report_id", "reports", "report_id"),
)
