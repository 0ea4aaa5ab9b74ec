"""Point-in-time features for reports and orders: one code path for training and serving.

`History.from_tables` indexes the raw tables once. `report_features` and
`order_features` are pure functions of (rows to score, history): training calls
them with every labelled row, the service with one request's rows, and both get
the same numbers because they run the same code. Every history feature of a row
at time t uses only events strictly before t, and labels only once they were
known (outcomes after `resolved_at`, order fraud after `fraud_known_at`,
violations after `decided_at`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from features import vocabulary as V
from features.history import History, padded
from features.streams import (
    DAY,
    HOUR,
    NAT,
    ONE_BY_ONE_MAX_IDS,
    Query,
    seconds,
    values_of,
)
from features.text import TEXT_FEATURES, text_features

WINDOWS = {"1h": HOUR, "24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
VIOLATION_WINDOWS = {"30d": 30 * DAY, "90d": 90 * DAY, "180d": 180 * DAY}
SPEND_WINDOWS = {"1d": DAY, "7d": 7 * DAY, "30d": 30 * DAY}
RATE_WINDOW = 30 * DAY
# Orders placed at least this long ago have mostly had their chargeback arrive (the label delay averages 25 days).
MATURE_ORDER_AGE = 30 * DAY

CATEGORICALS: dict[str, tuple[str, ...]] = {
    "reporter_type": V.REPORTER_TYPES,
    "channel": V.CHANNELS,
    "category": V.CATEGORIES,
    "family": V.FAMILIES,
}


def _smoothed_rate(hits: np.ndarray, total: np.ndarray, prior: float, strength: float = 2.0) -> np.ndarray:
    """A rate shrunk toward `prior` so that one event does not read as 0% or 100%."""
    return (hits + prior * strength) / (total + strength)


def _ratio(hits: np.ndarray, total: np.ndarray) -> np.ndarray:
    """hits / total, NaN where there is nothing to divide by (the model learns what 'no data' means)."""
    return np.divide(hits, total, out=np.full(np.broadcast(hits, total).shape, np.nan), where=total > 0)


# ---------------------------------------------------------------------------
# Feature blocks. Each returns a dict of name -> array for rows (q).

def account_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """Static account facts as of t: age, verification, role."""
    known = q.keys >= 0
    safe = np.where(known, q.keys, 0)
    age = np.where(known, (q.t - h.created_at(q.keys, 0)) / DAY, np.nan)
    return {
        f"{prefix}_age_days": age,
        f"{prefix}_verified": np.where(known, padded(h.verified)[safe], np.nan).astype(np.float64),
        f"{prefix}_is_seller": np.where(known, padded(h.is_seller)[safe], np.nan).astype(np.float64),
    }




def record_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """Enforcement record as of t: violations by family and window, actions, active penalties."""
    out: dict[str, np.ndarray] = {}
    for fam, stream in h.violations.items():
        for wname, w in VIOLATION_WINDOWS.items():
            out[f"{prefix}_violations_{fam}_{wname}"] = stream.count(q, w)
    out[f"{prefix}_warnings_180d"] = h.actions["warning"].count(q, VIOLATION_WINDOWS["180d"])
    out[f"{prefix}_suspensions_ever"] = h.actions["suspension"].count(q)
    out[f"{prefix}_bans_ever"] = h.actions["ban"].count(q)
    out[f"{prefix}_active_penalties"] = h.penalty_starts.count(q) - h.penalty_ends.count(q)
    return out


def reports_received_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """Reports about the account by window, distinct reporters in the last hour, past validity."""
    out = {f"{prefix}_reports_{w}": h.reports_by_subject.count(q, sec) for w, sec in WINDOWS.items()}
    out[f"{prefix}_distinct_reporters_1h"] = h.reports_by_subject.count_where(q, HOUR, "pair_prev", q.t - HOUR)
    resolved = h.outcomes_by_subject.count(q)
    valid = h.outcomes_by_subject.total("valid", q)
    out[f"{prefix}_reports_resolved"] = resolved
    out[f"{prefix}_reports_valid_rate"] = _smoothed_rate(valid, resolved, prior=0.5)
    return out


def fulfillment_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """The account as a seller over the last 30 days: volume, missed ship-by, cancellation, refund rates."""
    sold = h.sold.count(q, RATE_WINDOW)
    due = h.due.count(q, RATE_WINDOW)
    return {
        f"{prefix}_orders_sold_30d": sold,
        f"{prefix}_late_rate_30d": _ratio(h.due.total("missed", q, RATE_WINDOW), due),
        f"{prefix}_cancel_rate_30d": _ratio(h.cancels.count(q, RATE_WINDOW), sold),
        f"{prefix}_refund_rate_30d": _ratio(h.refunds.count(q, RATE_WINDOW), sold),
    }


def transactions_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """Spend as a buyer and fraud as a seller and buyer, by window; fraud counts only once known."""
    out: dict[str, np.ndarray] = {}
    for w, sec in SPEND_WINDOWS.items():
        n = h.bought.count(q, sec)
        out[f"{prefix}_buy_count_{w}"] = n
        out[f"{prefix}_buy_mean_{w}"] = _ratio(h.bought.total("amount", q, sec), n)
    for w, sec in SPEND_WINDOWS.items():
        out[f"{prefix}_seller_fraud_rate_{w}"] = _ratio(h.seller_fraud.count(q, sec), h.sold.count(q, sec))
    out[f"{prefix}_buyer_fraud_known"] = h.buyer_fraud.count(q)
    out[f"{prefix}_seller_fraud_known"] = h.seller_fraud.count(q)
    return out


def _days_alive(h: History, q: Query) -> np.ndarray:
    """Account age at t in days, at least one (NaN for unknown accounts), to turn counts into a pace."""
    known = q.keys >= 0
    return np.where(known, np.maximum((q.t - h.created_at(q.keys, 0)) / DAY, 1.0), np.nan)


def _days_since(t: np.ndarray, before: np.ndarray) -> np.ndarray:
    return np.where(before == NAT, np.nan, (t - before) / DAY)


def buying_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """The account as a buyer over its whole past: pace, last order, spread over sellers, chargebacks per mature order."""
    n = h.bought.count(q)
    mature = n - h.bought.count(q, MATURE_ORDER_AGE)
    pace = n / _days_alive(h, q)
    week = h.bought.count(q, 7 * DAY)
    mean = _ratio(h.bought.total("amount", q), n)
    return {
        f"{prefix}_buys_ever": n,
        f"{prefix}_buys_per_day": pace,
        f"{prefix}_buy_pace_7d_vs_ever": _ratio(week, 7 * pace),
        f"{prefix}_buy_mean_ever": mean,
        f"{prefix}_buy_mean_7d_vs_ever": _ratio(h.bought.total("amount", q, 7 * DAY), week) / mean,
        f"{prefix}_days_since_buy": _days_since(q.t, h.bought.last_time(q)),
        f"{prefix}_seller_spread": _ratio(h.bought.total("new_pair", q), n),
        f"{prefix}_chargebacks_per_mature_buy": _ratio(h.buyer_fraud.count(q), mature),
    }


def selling_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """The account as a seller over its whole past: pace, spread over buyers, missed ship-by, cancels, refunds, chargebacks."""
    n = h.sold.count(q)
    mature = n - h.sold.count(q, MATURE_ORDER_AGE)
    return {
        f"{prefix}_sold_ever": n,
        f"{prefix}_sells_per_day": n / _days_alive(h, q),
        f"{prefix}_sale_mean_ever": _ratio(h.sold.total("amount", q), n),
        f"{prefix}_buyer_spread": _ratio(h.sold.total("new_pair", q), n),
        f"{prefix}_late_rate_ever": _ratio(h.due.total("missed", q), h.due.count(q)),
        f"{prefix}_cancel_rate_ever": _ratio(h.cancels.count(q), n),
        f"{prefix}_refund_rate_ever": _ratio(h.refunds.count(q), n),
        f"{prefix}_chargebacks_per_mature_sale": _ratio(h.seller_fraud.count(q), mature),
    }


def fraud_record_block(h: History, q: Query, prefix: str) -> dict[str, np.ndarray]:
    """Fraud reports about the account, and how many reviews confirmed fraud (once resolved)."""
    confirmed = h.outcomes_by_subject.total("fraud", q)
    return {
        f"{prefix}_fraud_reports_ever": h.fraud_reports_by_subject.count(q),
        f"{prefix}_fraud_reports_30d": h.fraud_reports_by_subject.count(q, 30 * DAY),
        f"{prefix}_fraud_confirmed": confirmed,
        f"{prefix}_fraud_confirmed_rate": _smoothed_rate(confirmed, h.outcomes_by_subject.count(q), prior=0.1),
    }


def reporter_block(h: History, q: Query) -> dict[str, np.ndarray]:
    """The reporter's track record as known at t; NaN for reports without a reporter account."""
    known = q.keys >= 0
    resolved = h.outcomes_by_reporter.count(q)
    valid = h.outcomes_by_reporter.total("valid", q)
    nan = np.nan
    return {
        "reporter_past_reports": np.where(known, h.reports_by_reporter.count(q), nan),
        "reporter_reports_24h": np.where(known, h.reports_by_reporter.count(q, DAY), nan),
        "reporter_past_resolved": np.where(known, resolved, nan),
        "reporter_accuracy": np.where(known, _smoothed_rate(valid, resolved, prior=0.5), nan),
        **{k: v for k, v in account_block(h, q, "reporter").items() if k != "reporter_is_seller"},
    }


def order_link_block(h: History, order_codes: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """State of the order a report names, as of the report's time (NaN when no order is named)."""
    known = order_codes >= 0
    if not len(h.orders):
        nan = np.full(len(t), np.nan)
        return {k: nan for k in ORDER_LINK_FEATURES}
    rows = np.where(known, order_codes, 0)
    o = {col: values[rows] for col, values in h.order_times.items()}

    def before(col: str) -> np.ndarray:
        v = o[col]
        return np.where(known, ((v != NAT) & (v < t)).astype(np.float64), np.nan)

    return {
        "order_amount": np.where(known, o["amount"], np.nan),
        "order_age_days": np.where(known, (t - o["created"]) / DAY, np.nan),
        "order_shipped": before("shipped"),
        "order_delivered": before("delivered"),
        "order_past_ship_by": before("ship_by"),
        "order_cancelled": before("cancelled"),
        "order_refunded": before("refunded"),
        "order_fraud_known": before("fraud_known"),
        **order_buyer_block(h, o["buyer"], o["created"], o["amount"], known),
    }


def order_buyer_block(h: History, buyer: np.ndarray, created: np.ndarray, amount: np.ndarray,
                      known: np.ndarray) -> dict[str, np.ndarray]:
    """The named order's buyer as it stood when the order was placed (before the report, so known at it)."""
    q = Query(np.where(known, buyer, -1), np.where(known, created, 0))
    before = buying_block(h, q, "b")
    account = account_block(h, q, "b")
    return {
        "order_buyer_age_days": np.where(known, account["b_age_days"], np.nan),
        "order_buyer_buys_7d": np.where(known, h.bought.count(q, 7 * DAY), np.nan),
        "order_buyer_days_since_buy": np.where(known, before["b_days_since_buy"], np.nan),
        "order_vs_buyer_mean": np.where(known, amount / before["b_buy_mean_ever"], np.nan),
    }


# A reports frame, or its columns by name as plain sequences (timestamps tz-aware, missing values None).
Reports = pd.DataFrame | Mapping[str, Sequence]

_CATEGORY_INDEX = {name: pd.Index(list(values), dtype=object) for name, values in CATEGORICALS.items()}
_CATEGORY_DTYPE = {name: pd.CategoricalDtype(list(values)) for name, values in CATEGORICALS.items()}
_CATEGORY_CODE = {name: {v: i for i, v in enumerate(values)} for name, values in CATEGORICALS.items()}


# A category's code -> its family's code, so family needs no second lookup of the strings.
_FAMILY_OF_CATEGORY = np.array([V.FAMILIES.index(V.CATEGORY_FAMILY[c]) for c in V.CATEGORIES], dtype=np.int64)


def _categorical(values: pd.Series | Sequence, name: str) -> pd.Categorical:
    """Values on the fixed vocabulary; anything outside it (or missing) becomes NaN."""
    if len(values) <= ONE_BY_ONE_MAX_IDS:  # a dict lookup each, rather than building an Index (see codes_for)
        code = _CATEGORY_CODE[name]
        codes = np.array([code.get(v, -1) if isinstance(v, str) else -1 for v in values_of(values)], dtype=np.int64)
    else:
        codes = _CATEGORY_INDEX[name].get_indexer(pd.Index(values_of(values), dtype=object))
    return pd.Categorical.from_codes(codes, dtype=_CATEGORY_DTYPE[name])


def _family_of(category: pd.Categorical) -> pd.Categorical:
    codes = category.codes
    return pd.Categorical.from_codes(np.where(codes < 0, -1, _FAMILY_OF_CATEGORY[codes]), dtype=_CATEGORY_DTYPE["family"])


def as_model_input(X: pd.DataFrame) -> pd.DataFrame:
    """X with its categorical columns on the fixed vocabulary categories.

    Models see the same category codes whether X came from `report_features`
    or as plain strings through MLflow's pyfunc interface.
    """
    fix = {c: _categorical(X[c], c) for c in CATEGORICALS if c in X.columns and not _has_vocabulary(X[c], c)}
    return X.assign(**fix) if fix else X


def as_matrix(X: pd.DataFrame) -> np.ndarray:
    """X as the float matrix LightGBM predicts from, in X's column order: categoricals as their codes on the
    fixed vocabulary (missing: NaN), everything else as float64; the same numbers LightGBM derives from the
    frame itself. Scoring converts once per request instead of once per model call: LightGBM's own pandas
    conversion costs milliseconds per call, far more than predicting a few rows.
    """
    X = as_model_input(X)
    cats = [c for c, dtype in X.dtypes.items() if isinstance(dtype, pd.CategoricalDtype)]
    codes = {c: _float_codes(X[c].array) for c in cats}
    return (X.assign(**codes) if codes else X).to_numpy(dtype=np.float64, na_value=np.nan)


def _has_vocabulary(col: pd.Series, name: str) -> bool:
    return isinstance(col.dtype, pd.CategoricalDtype) and list(col.dtype.categories) == list(CATEGORICALS[name])


def report_features(reports: pd.DataFrame, h: History) -> pd.DataFrame:
    """Features of each report at its created_at, in the order of `reports` (see FEATURES for meanings)."""
    return _frame(report_columns(reports, h), REPORT_FEATURES)


def report_columns(reports: Reports, h: History) -> dict[str, np.ndarray | pd.Categorical]:
    """report_features as columns, before any frame is built: the service scores straight from these
    (columns_matrix), since building a frame and converting it back cost a quarter of a request.

    `reports` is a reports frame or, for a request's few reports, the same columns as plain lists (see
    values_of): one computation either way."""
    t = seconds(reports["created_at"])
    subject = Query(h.account_codes(reports["subject_id"]), t)
    reporter = Query(h.account_codes(reports["reporter_id"]), t)
    category = _categorical(reports["category"], "category")
    blocks = {
        **reporter_block(h, reporter),
        **account_block(h, subject, "subject"),
        **record_block(h, subject, "subject"),
        **reports_received_block(h, subject, "subject"),
        **fulfillment_block(h, subject, "subject"),
        **transactions_block(h, subject, "subject"),
        **buying_block(h, subject, "subject"),
        **selling_block(h, subject, "subject"),
        **fraud_record_block(h, subject, "subject"),
        **order_link_block(h, h.order_codes(reports["order_id"]), t),
        "has_show": np.asarray(pd.notna(values_of(reports["show_id"])), dtype=np.float64),
        "hour_of_day": ((t % DAY) // HOUR).astype(np.float64),
    }
    columns = {
        **{c: _categorical(reports[c], c) for c in ("reporter_type", "channel")},
        "category": category,
        "family": _family_of(category),
        **blocks,
        **text_features(reports["description"]),
    }
    return {name: columns[name] for name in REPORT_FEATURES}


def columns_matrix(columns: dict[str, np.ndarray | pd.Categorical], names: list[str]) -> np.ndarray:
    """as_matrix of the frame these columns would make (names in model order): categoricals as their
    vocabulary codes (missing: NaN), everything else float64."""
    return np.column_stack([_float_codes(columns[n]) if isinstance(columns[n], pd.Categorical)
                            else np.asarray(columns[n], dtype=np.float64) for n in names])


def _float_codes(values: pd.Categorical) -> np.ndarray:
    codes = values.codes
    return np.where(codes < 0, np.nan, codes.astype(np.float64))


def _frame(columns: dict, names: dict[str, str]) -> pd.DataFrame:
    """The feature frame in `names` order: the categoricals (first in every feature list), then one float
    block. Stacking the floats first is 3x faster than pandas assembling a frame from a dict of a hundred
    columns, which on a one-report request cost more than computing them."""
    cats = [n for n in names if n in CATEGORICALS]
    floats = [n for n in names if n not in CATEGORICALS]
    assert list(names)[:len(cats)] == cats, "categorical features come first"
    block = pd.DataFrame(columns_matrix(columns, floats), columns=floats, copy=False)
    return pd.concat([pd.DataFrame({n: columns[n] for n in cats}), block], axis=1) if cats else block


ORDER_CHUNK_ROWS = 250_000


def order_features(orders: pd.DataFrame, h: History) -> pd.DataFrame:
    """Features of each order at its created_at, for transaction monitoring.

    More than ORDER_CHUNK_ROWS orders are done a chunk at a time into one float matrix (a row's features do
    not depend on the other rows): at 2M orders, the 81 columns, the frame built from them and the lookups'
    caches held 3 GB at once.
    """
    if len(orders) <= ORDER_CHUNK_ROWS:
        return _order_features(orders, h)
    out = np.empty((len(orders), len(ORDER_FEATURES)))
    for start in range(0, len(orders), ORDER_CHUNK_ROWS):
        chunk = _order_features(orders.iloc[start:start + ORDER_CHUNK_ROWS], h)
        out[start:start + len(chunk)] = chunk.to_numpy(np.float64)
    return pd.DataFrame(out, columns=list(ORDER_FEATURES), copy=False)


def _order_features(orders: pd.DataFrame, h: History) -> pd.DataFrame:
    t = seconds(orders["created_at"])
    buyer = Query(h.account_codes(orders["buyer_id"]), t)
    seller = Query(h.account_codes(orders["seller_id"]), t)
    amount = orders["amount"].to_numpy(np.float64)
    buyer_tx = {k: v for k, v in transactions_block(h, buyer, "buyer").items() if "seller_fraud" not in k}
    buying = buying_block(h, buyer, "buyer")
    selling = selling_block(h, seller, "seller")
    blocks = {
        "amount": amount,
        "amount_vs_buyer_mean_30d": amount / buyer_tx["buyer_buy_mean_30d"],
        "amount_vs_buyer_mean_ever": amount / buying["buyer_buy_mean_ever"],
        "amount_vs_seller_mean_ever": amount / selling["seller_sale_mean_ever"],
        "has_show": orders["show_id"].notna().to_numpy(np.float64),
        "hour_of_day": ((t % DAY) // HOUR).astype(np.float64),
        **account_block(h, buyer, "buyer"),
        **buyer_tx,
        "buyer_buys_1h": h.bought.count(buyer, HOUR),
        **buying,
        **record_block(h, buyer, "buyer"),
        "buyer_reports_30d": h.reports_by_subject.count(buyer, 30 * DAY),
        **fraud_record_block(h, buyer, "buyer"),
        **account_block(h, seller, "seller"),
        **fulfillment_block(h, seller, "seller"),
        **selling,
        **{k: v for k, v in transactions_block(h, seller, "seller").items() if "fraud" in k},
        **record_block(h, seller, "seller"),
        "seller_reports_30d": h.reports_by_subject.count(seller, 30 * DAY),
        **fraud_record_block(h, seller, "seller"),
    }
    return pd.DataFrame(blocks)[list(ORDER_FEATURES)]


# ---------------------------------------------------------------------------
# The feature catalogue: name -> one-line meaning. Generated docs read this.

def _record_docs(prefix: str, who: str) -> dict[str, str]:
    docs = {
        f"{prefix}_violations_{fam}_{w}": f"{who}'s {fam} violations decided in the last {w}"
        for fam in V.FAMILIES
        for w in VIOLATION_WINDOWS
    }
    docs[f"{prefix}_warnings_180d"] = f"warnings given to the {who} in the last 180 days"
    docs[f"{prefix}_suspensions_ever"] = f"suspensions the {who} ever received (they never expire)"
    docs[f"{prefix}_bans_ever"] = f"bans the {who} ever received"
    docs[f"{prefix}_active_penalties"] = f"time-limited penalties on the {who} still running at the time"
    return docs


def _account_docs(prefix: str, who: str) -> dict[str, str]:
    return {
        f"{prefix}_age_days": f"age of the {who}'s account in days",
        f"{prefix}_verified": f"the {who}'s identity is verified",
        f"{prefix}_is_seller": f"the {who}'s account is a seller account",
    }


def _transaction_docs(prefix: str, who: str) -> dict[str, str]:
    docs = {}
    for w in SPEND_WINDOWS:
        docs[f"{prefix}_buy_count_{w}"] = f"orders the {who} placed as a buyer in the last {w}"
        docs[f"{prefix}_buy_mean_{w}"] = "mean amount of those orders"
    for w in SPEND_WINDOWS:
        docs[f"{prefix}_seller_fraud_rate_{w}"] = (
            f"fraud labels that became known in the last {w} per order the {who} sold in it (label delay respected)"
        )
    docs[f"{prefix}_buyer_fraud_known"] = f"fraudulent orders of the {who} as a buyer known so far"
    docs[f"{prefix}_seller_fraud_known"] = f"fraudulent orders of the {who} as a seller known so far"
    return docs


def _buying_docs(prefix: str, who: str) -> dict[str, str]:
    return {
        f"{prefix}_buys_ever": f"orders the {who} ever placed as a buyer",
        f"{prefix}_buys_per_day": f"those orders per day of the {who}'s account age (at least one day)",
        f"{prefix}_buy_pace_7d_vs_ever": f"the {who}'s orders in the last 7 days relative to its usual weekly pace (a burst)",
        f"{prefix}_buy_mean_ever": "mean amount of those orders",
        f"{prefix}_buy_mean_7d_vs_ever": f"mean amount of the {who}'s orders in the last 7 days relative to its mean ever",
        f"{prefix}_days_since_buy": f"days since the {who}'s previous order as a buyer",
        f"{prefix}_seller_spread": f"distinct sellers per order the {who} placed (low: keeps buying from the same few)",
        f"{prefix}_chargebacks_per_mature_buy": (
            f"chargebacks known on the {who}'s purchases per purchase older than 30 days (label delay respected)"),
    }


def _selling_docs(prefix: str, who: str) -> dict[str, str]:
    return {
        f"{prefix}_sold_ever": f"orders the {who} ever sold",
        f"{prefix}_sells_per_day": f"those orders per day of the {who}'s account age (at least one day)",
        f"{prefix}_sale_mean_ever": "mean amount of those orders",
        f"{prefix}_buyer_spread": f"distinct buyers per order the {who} sold (low: sells to the same few)",
        f"{prefix}_late_rate_ever": f"share of all the {who}'s orders due so far that missed their ship-by time",
        f"{prefix}_cancel_rate_ever": f"cancellations so far per order the {who} ever sold",
        f"{prefix}_refund_rate_ever": f"refunds so far per order the {who} ever sold",
        f"{prefix}_chargebacks_per_mature_sale": (
            f"chargebacks known on the {who}'s sales per sale older than 30 days (label delay respected)"),
    }


def _fraud_record_docs(prefix: str, who: str) -> dict[str, str]:
    return {
        f"{prefix}_fraud_reports_ever": f"fraud-family reports ever filed about the {who}",
        f"{prefix}_fraud_reports_30d": f"fraud-family reports about the {who} in the last 30 days",
        f"{prefix}_fraud_confirmed": f"reviews of reports about the {who} that confirmed fraud (once resolved)",
        f"{prefix}_fraud_confirmed_rate": "share of the resolved reports about it that confirmed fraud (smoothed toward 0.1)",
    }


ORDER_LINK_FEATURES: dict[str, str] = {
    "order_amount": "amount of the order the report names",
    "order_age_days": "days since that order was placed",
    "order_shipped": "that order had shipped before the report",
    "order_delivered": "that order had been delivered before the report",
    "order_past_ship_by": "that order's ship-by time had passed before the report",
    "order_cancelled": "that order had been cancelled before the report",
    "order_refunded": "that order had been refunded before the report",
    "order_fraud_known": "a chargeback on that order was known before the report",
    "order_buyer_age_days": "age in days of that order's buyer account when the order was placed",
    "order_buyer_buys_7d": "orders that buyer placed in the 7 days before it",
    "order_buyer_days_since_buy": "days between that buyer's previous order and this one",
    "order_vs_buyer_mean": "that order's amount relative to the buyer's mean order before it",
}


def _fulfillment_docs(prefix: str, who: str) -> dict[str, str]:
    return {
        f"{prefix}_orders_sold_30d": f"orders the {who} sold in the last 30 days",
        f"{prefix}_late_rate_30d": f"share of the {who}'s orders due in the last 30 days that missed their ship-by time",
        f"{prefix}_cancel_rate_30d": f"cancellations in the last 30 days per order the {who} sold in them",
        f"{prefix}_refund_rate_30d": f"refunds in the last 30 days per order the {who} sold in them",
    }


REPORT_FEATURES: dict[str, str] = {
    "reporter_type": "who filed the report (buyer, seller, moderator, automated_detection, rules_engine)",
    "channel": "where it was filed (livestream, profile, direct_message, system)",
    "category": "reported category",
    "family": "issue family of the category (behavioral, logistics, fraud)",
    "reporter_past_reports": "reports the reporter filed before this one",
    "reporter_reports_24h": "reports the reporter filed in the last 24 hours",
    "reporter_past_resolved": "the reporter's earlier reports already reviewed",
    "reporter_accuracy": "share of the reporter's reviewed reports found valid (smoothed toward 0.5)",
    "reporter_age_days": "age of the reporter's account in days",
    "reporter_verified": "the reporter's identity is verified",
    **_account_docs("subject", "subject"),
    **_record_docs("subject", "subject"),
    **{f"subject_reports_{w}": f"reports about the subject in the last {w}" for w in WINDOWS},
    "subject_distinct_reporters_1h": "distinct reporters of the subject in the last hour",
    "subject_reports_resolved": "reports about the subject already reviewed",
    "subject_reports_valid_rate": "share of those found valid (smoothed toward 0.5)",
    **_fulfillment_docs("subject", "subject"),
    **_transaction_docs("subject", "subject"),
    **_buying_docs("subject", "subject"),
    **_selling_docs("subject", "subject"),
    **_fraud_record_docs("subject", "subject"),
    **ORDER_LINK_FEATURES,
    "has_show": "the report names a livestream",
    "hour_of_day": "hour of day (UTC) the report was filed",
    **TEXT_FEATURES,
}

ORDER_FEATURES: dict[str, str] = {
    "amount": "order amount",
    "amount_vs_buyer_mean_30d": "order amount relative to the buyer's mean order in the last 30 days",
    "amount_vs_buyer_mean_ever": "order amount relative to the buyer's mean order before it",
    "amount_vs_seller_mean_ever": "order amount relative to the seller's mean sale before it",
    "has_show": "the order was placed in a livestream",
    "hour_of_day": "hour of day (UTC) the order was placed",
    **_account_docs("buyer", "buyer"),
    **{k: v for k, v in _transaction_docs("buyer", "buyer").items() if "seller_fraud" not in k},
    "buyer_buys_1h": "orders the buyer placed in the last hour",
    **_buying_docs("buyer", "buyer"),
    **_record_docs("buyer", "buyer"),
    "buyer_reports_30d": "reports about the buyer in the last 30 days",
    **_fraud_record_docs("buyer", "buyer"),
    **_account_docs("seller", "seller"),
    **_fulfillment_docs("seller", "seller"),
    **_selling_docs("seller", "seller"),
    **{k: v for k, v in _transaction_docs("seller", "seller").items() if "fraud" in k},
    **_record_docs("seller", "seller"),
    "seller_reports_30d": "reports about the seller in the last 30 days",
    **_fraud_record_docs("seller", "seller"),
}

FEATURES = {"report": REPORT_FEATURES, "order": ORDER_FEATURES}
