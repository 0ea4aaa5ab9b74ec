"""Proactive monitors: transaction monitoring and the fulfilment rules engine, as report records.

The source describes two ways Trust & Safety finds problems before anyone
reports them: its own AI tooling on transactions, and a rules engine that
watches sellers' fulfilment (cancellations, refunds, shipping) and flags, for
example, a seller who missed shipping deadlines in the last 30 days. Both
monitors here turn a data set into *report records*: dicts with exactly the
fields of the reports table (`features.contract.REPORTS`), `created_at` as an
ISO-8601 string, channel "system" and no reporter. A proactive case therefore
flows through the same intake, scoring and queue as a user report.

The functions are pure: no I/O and no clock (`as_of` is an argument), and they
use only what was known at `as_of`. Work over orders is vectorised; Python
loops run only over flagged orders and sellers to build the dicts.

Report ids are deterministic, so re-running a monitor is idempotent at an
intake that keys on report_id:
  * transaction monitoring: "tm-<order_id>" (an order opens at most one case,
    however many runs see it);
  * fulfilment rules: "fr-<seller_id>-<as_of date>-<rule>" (one case per
    seller, rule and day the monitor runs).

Both kinds are filed at `as_of` (when the monitor ran: never before the order
or the events they cite), with no show_id. Fulfilment reports carry one key
beyond the contract, `evidence` (rule, rate, threshold, the offending order ids
and the counts behind the rate), for machines; strip it before
`validate_table("reports", ...)` or the API's `parse_records`, which reject
unknown fields. Transaction reports carry no extra key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.build import order_features
from features.history import History
from features.streams import DAY, NAT, seconds
from policy.sections import from_mapping

if TYPE_CHECKING:
    from training.models import BinaryModel

EVIDENCE_KEY = "evidence"  # the one non-contract key on fulfilment reports
MAX_LISTED_ORDERS = 50  # order ids spelled out in a description; the evidence key lists all
TOP_CONTRIBUTIONS = 3

# Rule -> (report category, sentence template, name of the rate).
# The reports vocabulary has no "cancellation" or "refund" category. A cancelled or
# refunded order is one the buyer did not get (or not as sold): the nearest logistics
# category is missing_item, which is also the only category besides shipping_delay
# that the simulated rules engine (the report models' training data) files.
FULFILLMENT_RULES: dict[str, tuple[str, str, str]] = {
    "late": ("shipping_delay", "{count} of {base} orders due {when} missed their ship-by deadline "
             "(shipped late or not at all)", "late rate"),
    "cancel": ("missing_item", "{count} cancellations against {base} orders sold {when}", "cancellation rate"),
    "refund": ("missing_item", "{count} refunds against {base} orders sold {when}", "refund rate"),
}


@dataclass(frozen=True)
class MonitorConfig:
    """Thresholds of both monitors; rates are shares in [0, 1], windows end at `as_of`."""

    fraud_threshold: float = 0.5  # order fraud risk above which a case opens
    lookback_days: int = 30  # window of orders / fulfilment events examined, ending at as_of
    late_rate: float = 0.2  # missed ship-by share above which a seller case opens
    cancel_rate: float = 0.15
    refund_rate: float = 0.15
    min_orders: int = 5  # don't judge a seller on fewer orders due/sold in the window

    def __post_init__(self) -> None:
        for name in ("fraud_threshold", "late_rate", "cancel_rate", "refund_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"monitor config {name} must be a number in [0, 1], got {value!r}")
        for name, low in (("lookback_days", 1), ("min_orders", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"monitor config {name} must be an integer >= {low}, got {value!r}")

    @classmethod
    def from_dict(cls, d: Mapping) -> "MonitorConfig":
        """A config from the policy file's section; unknown keys are an error, missing ones keep defaults."""
        return from_mapping(cls, d, "monitor config")

    def rate_threshold(self, rule: str) -> float:
        return {"late": self.late_rate, "cancel": self.cancel_rate, "refund": self.refund_rate}[rule]


def _as_of_seconds(as_of: datetime) -> tuple[pd.Timestamp, int]:
    """as_of as a UTC timestamp (naive = UTC, as in the contract) and in whole seconds like `History`."""
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts, int(seconds(pd.Series([ts]))[0])


def _iso(ts: pd.Timestamp) -> str:
    return ts.isoformat()


def _report(report_id: str, created_at: str, reporter_type: str, subject_id: str, order_id: str | None,
            category: str, description: str) -> dict[str, Any]:
    """A record with exactly the reports-table fields, as a system monitor files it."""
    return {
        "report_id": report_id,
        "created_at": created_at,
        "reporter_id": None,
        "reporter_type": reporter_type,
        "channel": "system",
        "subject_id": subject_id,
        "show_id": None,
        "order_id": order_id,
        "category": category,
        "description": description,
    }


# ---------------------------------------------------------------------------
# Transaction monitoring


def transaction_reports(orders: pd.DataFrame, history: History, fraud_model: BinaryModel, as_of: datetime | None,
                        config: MonitorConfig) -> list[dict]:
    """One payment_fraud report per order placed in [as_of - lookback, as_of) whose fraud risk exceeds the threshold
    (as_of None: every order given, each report filed when its order was placed: monitoring as orders arrive).

    Args:
        orders: orders table (contract columns); rows outside the window are ignored.
        history: `History.from_tables` of the data set; features are point-in-time, so a
            history holding events after as_of gives the same scores.
        fraud_model: the order fraud classifier (`FraudBundle.order`): `predict_proba` and
            `contributions` over `order_features` columns.
        as_of: when the monitor runs (naive = UTC).
        config: thresholds.

    Returns:
        Report records sorted by report_id. Each order is scored at its own created_at,
        exactly as the model was trained; the report is filed at as_of (when the monitor
        ran, so never before the order), about the order's buyer, with report_id
        "tm-<order_id>". The description gives the risk and the three features that push
        it up most (largest LightGBM contributions, raw-score units).
    """
    if as_of is None:  # as the orders arrive: each one, filed at its own time
        window = orders.reset_index(drop=True)
    else:
        ts, end = _as_of_seconds(as_of)
        start = end - config.lookback_days * DAY
        created = seconds(orders["created_at"])
        window = orders[(created >= start) & (created < end)].reset_index(drop=True)
    if window.empty:
        return []
    X = order_features(window, history)
    risk = np.asarray(fraud_model.predict_proba(X), dtype=np.float64)
    hit = np.flatnonzero(risk > config.fraud_threshold)
    if hit.size == 0:
        return []
    Xf = X.iloc[hit].reset_index(drop=True)
    contrib = np.asarray(fraud_model.contributions(Xf), dtype=np.float64)
    top = np.argsort(-contrib, axis=1, kind="stable")[:, :TOP_CONTRIBUTIONS]
    names = list(fraud_model.features)
    values = Xf[names].to_numpy(np.float64)
    flagged = window.iloc[hit]
    out = []
    for i, (order_id, buyer, amount, placed) in enumerate(zip(
            flagged["order_id"], flagged["buyer_id"], flagged["amount"], flagged["created_at"])):
        created_at = _iso(placed) if as_of is None else _iso(ts)
        reasons = ", ".join(f"{names[j]}={_fmt(values[i, j])} ({contrib[i, j]:+.2f})" for j in top[i])
        description = (
            f"Transaction monitoring: order {order_id} (USD {amount:.2f}, placed {_iso(placed)}) has payment "
            f"fraud risk {risk[hit[i]]:.2f} (threshold {config.fraud_threshold:.2f}). "
            f"Top contributing features: {reasons}."
        )
        out.append(_report(f"tm-{order_id}", created_at, "automated_detection", str(buyer), str(order_id),
                           "payment_fraud", description))
    return sorted(out, key=lambda r: r["report_id"])


def _fmt(value: Any) -> str:
    """A feature value for a sentence: NaN as n/a, whole numbers without decimals."""
    v = float(value)
    if np.isnan(v):
        return "n/a"
    return f"{v:.0f}" if v.is_integer() else f"{v:.3g}"


# ---------------------------------------------------------------------------
# Fulfilment rules engine


@dataclass(frozen=True)
class _RuleCounts:
    """One rule over the window: the offending orders and per-seller numerator and denominator."""

    rows: np.ndarray  # order rows counted in the numerator
    seller: np.ndarray  # their seller codes (positions in the seller index)
    event_t: np.ndarray  # when each became a problem (ship_by, cancelled_at, refunded_at)
    hits: np.ndarray  # numerator per seller code
    base: np.ndarray  # denominator per seller code


def _rule_counts(orders: pd.DataFrame, start: int, end: int) -> tuple[pd.Index, dict[str, _RuleCounts]]:
    """Per-seller counts of the three fulfilment rules over [start, end) (epoch seconds), point-in-time.

    Definitions match `features.build.fulfillment_block` (the sellers' 30-day rates the
    models see), so a report's rate is the one its scoring features show:
      * late: of the orders due in the window (ship_by in it, not cancelled at or before
        ship_by), those not shipped by ship_by (shipped_at missing or later). ship_by is
        before `end`, so whether an order missed it is already known then.
      * cancel / refund: cancellations / refunds timestamped in the window, per order sold
        (created) in the window.
    """
    created, ship_by = seconds(orders["created_at"]), seconds(orders["ship_by"])
    shipped, cancelled = seconds(orders["shipped_at"]), seconds(orders["cancelled_at"])
    refunded = seconds(orders["refunded_at"])

    def within(t: np.ndarray) -> np.ndarray:
        return (t != NAT) & (t >= start) & (t < end)

    cancelled_before_due = (cancelled != NAT) & (cancelled <= ship_by)
    due = within(ship_by) & ~cancelled_before_due
    missed = due & ((shipped == NAT) | (shipped > ship_by))
    sold, cancels, refunds = within(created), within(cancelled), within(refunded)

    relevant = np.flatnonzero(due | sold | cancels | refunds)
    codes, sellers = pd.factorize(orders["seller_id"].to_numpy(object)[relevant], sort=True)

    def rule(numerator: np.ndarray, denominator: np.ndarray, t: np.ndarray) -> _RuleCounts:
        local = np.flatnonzero(numerator[relevant])
        return _RuleCounts(rows=relevant[local], seller=codes[local], event_t=t[relevant[local]],
                           hits=np.bincount(codes[local], minlength=len(sellers)),
                           base=np.bincount(codes[denominator[relevant]], minlength=len(sellers)))

    counts = {
        "late": rule(missed, due, ship_by),
        "cancel": rule(cancels, sold, cancelled),
        "refund": rule(refunds, sold, refunded),
    }
    return pd.Index(sellers, dtype=object), counts


def fulfillment_reports(orders: pd.DataFrame, history: History, as_of: datetime, config: MonitorConfig) -> list[dict]:
    """One rules_engine report per seller and rule whose rate over the window exceeds its threshold.

    Args:
        orders: orders table (contract columns); only events in [as_of - lookback, as_of) count.
        history: `History.from_tables` of the data set, for the seller's account age at
            as_of (the source's example is a new seller flagged for missed deadlines).
        as_of: when the rules engine runs (naive = UTC).
        config: thresholds; a rule is judged only with at least `min_orders` orders due
            (late) or sold (cancel, refund) in the window, and fires when rate > threshold.

    Returns:
        Report records sorted by report_id, filed at as_of about the seller, with
        report_id "fr-<seller_id>-<as_of date>-<rule>", category shipping_delay (late) or
        missing_item (cancel, refund; see FULFILLMENT_RULES), no order_id (the case is
        about the seller's rate), a description naming the rule, rate, threshold and the
        offending orders (the first 50, then a count), and the extra key "evidence":
        {"rule", "rate", "threshold", "orders" (every offending order id, in the order
        they became a problem), "count", "base", "window_start", "window_end",
        "seller_age_days"}.
    """
    ts, end = _as_of_seconds(as_of)
    start = end - config.lookback_days * DAY
    window_start = ts - pd.Timedelta(days=config.lookback_days)
    sellers, counts = _rule_counts(orders, start, end)
    order_ids = orders["order_id"].to_numpy(object)
    ages = _account_age_days(history, sellers, end)
    out = []
    for rule, c in counts.items():
        threshold = config.rate_threshold(rule)
        rate = np.divide(c.hits, c.base, out=np.zeros(len(c.base)), where=c.base > 0)
        fired = np.flatnonzero((c.base >= config.min_orders) & (rate > threshold))
        if fired.size == 0:
            continue
        keep = np.isin(c.seller, fired)
        ids, seller, t = order_ids[c.rows[keep]], c.seller[keep], c.event_t[keep]
        order = np.lexsort((ids.astype(str), t, seller))
        ids, seller = ids[order], seller[order]
        lo, hi = np.searchsorted(seller, fired, side="left"), np.searchsorted(seller, fired, side="right")
        for s, a, b in zip(fired, lo, hi):
            evidence = {
                "rule": rule,
                "rate": float(rate[s]),
                "threshold": float(threshold),
                "orders": [str(o) for o in ids[a:b]],
                "count": int(c.hits[s]),
                "base": int(c.base[s]),
                "window_start": _iso(window_start),
                "window_end": _iso(ts),
                "seller_age_days": None if np.isnan(ages[s]) else round(float(ages[s]), 1),
            }
            out.append(_fulfillment_report(str(sellers[s]), ts, config.lookback_days, evidence))
    return sorted(out, key=lambda r: r["report_id"])


def _account_age_days(history: History, ids: pd.Index, end: int) -> np.ndarray:
    codes = history.account_codes(pd.Series(ids, dtype=object))
    created = history.created_at(codes, 0)
    return np.where((codes >= 0) & (created != NAT), (end - created) / DAY, np.nan)


def _fulfillment_report(seller: str, ts: pd.Timestamp, days: int, evidence: dict) -> dict[str, Any]:
    rule = evidence["rule"]
    category, template, rate_name = FULFILLMENT_RULES[rule]
    listed = evidence["orders"][:MAX_LISTED_ORDERS]
    more = len(evidence["orders"]) - len(listed)
    age = evidence["seller_age_days"]
    facts = template.format(count=evidence["count"], base=evidence["base"],
                            when=f"in the {days} days before {_iso(ts)}")
    description = (
        f"Fulfilment monitor ({rule} rule): seller {seller}: {facts}; {rate_name} {evidence['rate']:.1%}, "
        f"threshold {evidence['threshold']:.1%}."
        + (f" Seller account {age:.0f} days old." if age is not None else "")
        + f" Orders: {', '.join(listed)}"
        + (f" and {more} more." if more else ".")
    )
    report = _report(f"fr-{seller}-{ts:%Y-%m-%d}-{rule}", _iso(ts), "rules_engine", seller, None, category,
                     description)
    report[EVIDENCE_KEY] = evidence
    return report


def run_monitors(tables: dict, history, scorer, as_of: datetime, config: MonitorConfig,
                 on_step=lambda step: None) -> list[dict]:
    """Both monitors over a data set: the report records to feed to intake."""
    found = transaction_reports(tables["orders"], history, scorer.fraud.bundle.order, as_of, config)
    on_step("transactions")
    found += fulfillment_reports(tables["orders"], history, as_of, config)
    on_step("fulfilment")
    return found
