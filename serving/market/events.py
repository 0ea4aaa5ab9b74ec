"""The marketplace's events as the ingestion API takes them: the data contract's tables, with an order's later
facts and an account's later changes as events of their own.

`POST /events` takes any of {"accounts", "account_updates", "orders", "order_updates", "enforcements",
"outcomes"}, each a list of records. Accounts, enforcements and outcomes are the contract's rows. An order is
the contract's order as placed (the fact times are optional: an order sent late may already have shipped); what
happens to it afterwards is an order update `{"order_id", "fact", "at"}`, a new fact with its own time, never
an edit. An account update `{"account_id", "at", "verified"}` or `{"account_id", "at", "role"}` does the same
for verification and role. Reports keep `POST /reports`.

Every record is checked here, before anything is stored, with one message per offending field; what the store
already holds (known ids, conflicting content) is checked by serving.market.event_store in the writing transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from features import vocabulary as V
from features.contract import ACCOUNTS, ENFORCEMENTS, ORDERS, OUTCOMES, Column, Table
from serving.input_checks import FieldError, RequestError, check_records

# An order's later facts and the contract column each one fills.
ORDER_FACTS: dict[str, str] = {"shipped": "shipped_at", "delivered": "delivered_at", "cancelled": "cancelled_at",
                               "refunded": "refunded_at", "fraud": "fraud_known_at"}
# The contract's flags that follow from a fact being there.
FACT_FLAGS: dict[str, str] = {"cancelled": "cancelled", "refunded": "refunded", "fraud": "fraud"}

ORDERS_IN = Table(
    name="orders", doc="An order as placed; its fact times only if already known when it is sent.",
    key="order_id", columns=tuple(c for c in ORDERS.columns if c.name not in FACT_FLAGS.values()),
)
ORDER_UPDATES = Table(
    name="order_updates", doc="A fact about an order, at its own time.", key=None,
    columns=(Column("order_id", "str", "The order."),
             Column("fact", "category", "What happened.", allowed=tuple(ORDER_FACTS)),
             Column("at", "timestamp", "When it happened.")),
)
ACCOUNT_UPDATES = Table(
    name="account_updates", doc="A change of an account's verification or role, at its own time.", key=None,
    columns=(Column("account_id", "str", "The account."),
             Column("at", "timestamp", "When it changed."),
             Column("verified", "bool", "Verification passed (true) or was withdrawn (false).", nullable=True),
             Column("role", "category", "The account's new role.", nullable=True, allowed=V.ROLES)),
)
KINDS: dict[str, Table] = {"accounts": ACCOUNTS, "account_updates": ACCOUNT_UPDATES, "orders": ORDERS_IN,
                           "order_updates": ORDER_UPDATES, "enforcements": ENFORCEMENTS, "outcomes": OUTCOMES}


@dataclass(frozen=True)
class Batch:
    """Checked records by kind (timestamps as UTC pandas Timestamps)."""
    rows: dict[str, list[dict[str, Any]]]

    def __len__(self) -> int:
        return sum(len(r) for r in self.rows.values())


def check_batch(body: Any, max_batch: int) -> Batch:
    """A request body as a Batch, or a RequestError naming every offending field."""
    if not isinstance(body, dict):
        raise RequestError([FieldError("body", "expected a JSON object such as {\"orders\": [...]}")])
    errors = [FieldError(k, f"unknown field (allowed: {', '.join(KINDS)})") for k in body if k not in KINDS]
    present = {k: v for k, v in body.items() if k in KINDS and v is not None}
    if not errors and not any(isinstance(v, list) and v for v in present.values()):
        errors.append(FieldError("body", f"no events: send at least one record in one of {', '.join(KINDS)}"))
    total = sum(len(v) for v in present.values() if isinstance(v, list))
    if total > max_batch:
        errors.append(FieldError("body", f"batch of {total} records exceeds the maximum of {max_batch}"))
    if errors:
        raise RequestError(errors)
    rows: dict[str, list[dict[str, Any]]] = {}
    for kind, payload in present.items():
        if isinstance(payload, list) and not payload:
            continue
        try:
            rows[kind] = check_records(payload, KINDS[kind], kind, max_batch)
        except RequestError as err:
            errors += err.errors
            continue
        errors += _rules(kind, rows[kind])
    if errors:
        raise RequestError(errors)
    return Batch(rows)


def _rules(kind: str, rows: list[dict[str, Any]]) -> list[FieldError]:
    """What the contract says beyond each field's type (times are in the contract's range once parsed): times in
    order, one change per update, a severity exactly when valid, a family that fits the category, no record twice."""
    check = {"orders": _order_rules, "account_updates": _account_update_rules, "order_updates": _update_keys,
             "enforcements": _enforcement_rules, "outcomes": _outcome_rules}.get(kind)
    return check(kind, rows) if check else []


def _order_rules(kind: str, rows: list[dict]) -> list[FieldError]:
    errors = []
    for i, row in enumerate(rows):
        if row["amount"] is not None and row["amount"] < 0:
            errors.append(FieldError(f"{kind}[{i}].amount", f"must not be negative, got {row['amount']}"))
        for earlier, later in ORDERS.time_order:
            if row.get(earlier) is not None and row.get(later) is not None and row[later] < row[earlier]:
                errors.append(FieldError(f"{kind}[{i}].{later}", f"is before {earlier}"))
    return errors


def _account_update_rules(kind: str, rows: list[dict]) -> list[FieldError]:
    errors = [FieldError(f"{kind}[{i}]", "give exactly one of verified or role")
              for i, row in enumerate(rows) if (row["verified"] is None) == (row["role"] is None)]
    return errors + _duplicates(kind, rows, lambda r: (r["account_id"], "role" if r["role"] else "verified", r["at"]))


def _update_keys(kind: str, rows: list[dict]) -> list[FieldError]:
    return _duplicates(kind, rows, lambda r: (r["order_id"], r["fact"]))


def _duplicates(kind: str, rows: list[dict], key) -> list[FieldError]:
    seen: dict[Any, int] = {}
    errors = []
    for i, row in enumerate(rows):
        k = key(row)
        if k in seen:
            errors.append(FieldError(f"{kind}[{i}]", f"duplicate of {kind}[{seen[k]}]"))
        seen.setdefault(k, i)
    return errors


def _enforcement_rules(kind: str, rows: list[dict]) -> list[FieldError]:
    errors = []
    for i, row in enumerate(rows):
        if row["category"] in V.CATEGORY_FAMILY and row["family"] != V.CATEGORY_FAMILY[row["category"]]:
            errors.append(FieldError(f"{kind}[{i}].family", f"'{row['category']}' is in family "
                                                             f"'{V.CATEGORY_FAMILY[row['category']]}'"))
        if row["action_days"] is not None and not 0 <= row["action_days"] <= 36_500:
            errors.append(FieldError(f"{kind}[{i}].action_days", "must be between 0 and 36500"))
        if row["decided_at"] < row["occurred_at"]:
            errors.append(FieldError(f"{kind}[{i}].decided_at", "is before occurred_at"))
    return errors


def _outcome_rules(kind: str, rows: list[dict]) -> list[FieldError]:
    errors = []
    for i, row in enumerate(rows):
        if row["valid"] and row["severity"] is None:
            errors.append(FieldError(f"{kind}[{i}].severity", "required when valid is true"))
        if row["valid"] is False and row["severity"] is not None:
            errors.append(FieldError(f"{kind}[{i}].severity", "must be null when valid is false"))
    return errors


# The order in which events of the same second are sent: what they refer to first.
TIMELINE_ORDER = ("accounts", "orders", "order_updates", "account_updates", "enforcements", "reports", "outcomes")


def timeline(tables: dict[str, pd.DataFrame]) -> list[tuple[pd.Timestamp, str, dict[str, Any]]]:
    """A data set as the stream of events that built it, in time order: (time, kind, record as JSON), with each
    order's facts as order updates at their own times and reports as kind "reports" (sent to POST /reports).
    What `docket import` loads at once, a marketplace sends this way; the live-feature tests replay it."""
    events: list[tuple[pd.Timestamp, int, str, dict]] = []
    rank = {k: i for i, k in enumerate(TIMELINE_ORDER)}

    def add(kind: str, at: pd.Timestamp, record: dict) -> None:
        events.append((at, rank[kind], kind, {k: _json(v) for k, v in record.items()}))

    for r in tables["accounts"].to_dict("records"):
        add("accounts", r["created_at"], r)
    for r in tables.get("orders", pd.DataFrame()).to_dict("records"):
        add("orders", r["created_at"], {c.name: r[c.name] for c in ORDERS_IN.columns if c.name not in ORDER_FACTS.values()})
        for fact, column in ORDER_FACTS.items():
            if pd.notna(r[column]):
                add("order_updates", r[column], {"order_id": r["order_id"], "fact": fact, "at": r[column]})
    for r in tables.get("enforcements", pd.DataFrame()).to_dict("records"):
        add("enforcements", r["decided_at"], r)
    for r in tables.get("reports", pd.DataFrame()).to_dict("records"):
        add("reports", r["created_at"], r)
    for r in tables.get("outcomes", pd.DataFrame()).to_dict("records"):
        add("outcomes", r["resolved_at"], r)
    events.sort(key=lambda e: (e[0], e[1]))
    return [(at, kind, record) for at, _, kind, record in events]


def _json(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value
