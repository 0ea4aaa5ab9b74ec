"""Point-in-time correctness and batch/online parity of the report and order features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import ORDER_TIMES, known_at

from features.build import (
    FEATURES,
    ORDER_FEATURES,
    REPORT_FEATURES,
    order_features,
    report_features,
)
from features.history import History
from features.validate import validate_tables


@pytest.fixture(scope="module")
def cutoff(tables) -> pd.Timestamp:
    return tables["reports"]["created_at"].quantile(0.6)


@pytest.fixture(scope="module")
def before_cutoff(tables, cutoff):
    """Reports and orders filed in the day before the cut-off: the rows whose features are checked."""
    r, o = tables["reports"], tables["orders"]
    day = pd.Timedelta(days=1)
    return (r[(r["created_at"] <= cutoff) & (r["created_at"] > cutoff - day)].reset_index(drop=True),
            o[(o["created_at"] <= cutoff) & (o["created_at"] > cutoff - day)].reset_index(drop=True))


def _change_after(tables: dict, t: pd.Timestamp, rng: np.random.Generator) -> dict:
    """Every event after t changed: labels flipped, later times moved, later rows rewritten."""
    out = {k: v.copy() for k, v in tables.items()}
    later = out["outcomes"]["resolved_at"] > t
    out["outcomes"].loc[later, "valid"] = ~out["outcomes"].loc[later, "valid"]
    out["outcomes"].loc[later, "fraud_confirmed"] = ~out["outcomes"].loc[later, "fraud_confirmed"]
    later_r = out["reports"]["created_at"] > t
    subjects = out["reports"]["subject_id"].to_numpy()
    out["reports"].loc[later_r, "subject_id"] = rng.permutation(subjects[later_r.to_numpy()])
    out["reports"].loc[later_r, "category"] = "payment_fraud"
    later_e = out["enforcements"]["decided_at"] > t
    out["enforcements"].loc[later_e, "family"] = "fraud"
    out["enforcements"].loc[later_e, "action"] = "ban"
    orders = out["orders"]
    for col in ORDER_TIMES:
        moved = orders[col] > t
        orders.loc[moved, col] = orders.loc[moved, col] + pd.Timedelta(days=3)
    later_o = orders["created_at"] > t
    orders.loc[later_o, "amount"] = orders.loc[later_o, "amount"] * 10
    orders.loc[later_o, "seller_id"] = rng.permutation(orders.loc[later_o, "seller_id"].to_numpy())
    return out


@pytest.mark.parametrize("mutate", ["delete", "change"])
def test_features_ignore_every_event_after_the_report_time(tables, cutoff, before_cutoff, mutate):
    reports, orders = before_cutoff
    assert len(reports) > 20 and len(orders) > 20
    full = History.from_tables(tables)
    mutated_tables = known_at(tables, cutoff) if mutate == "delete" else _change_after(
        tables, cutoff, np.random.default_rng(0))
    mutated = History.from_tables(mutated_tables)
    pd.testing.assert_frame_equal(report_features(reports, full), report_features(reports, mutated))
    pd.testing.assert_frame_equal(order_features(orders, full), order_features(orders, mutated))


def test_features_do_change_when_earlier_events_change(tables, cutoff, before_cutoff):
    """The guard above must be able to fail: changing history before t does move the features."""
    reports, _ = before_cutoff
    earlier = dict(tables)
    earlier["outcomes"] = tables["outcomes"][tables["outcomes"]["resolved_at"] > cutoff - pd.Timedelta(days=60)]
    a = report_features(reports, History.from_tables(tables))
    b = report_features(reports, History.from_tables(earlier))
    assert not a["reporter_accuracy"].equals(b["reporter_accuracy"])


def test_one_report_alone_gets_the_same_features_as_in_the_batch(tables):
    history = History.from_tables(tables)
    reports = tables["reports"]
    batch = report_features(reports, history)
    for i in np.random.default_rng(3).choice(len(reports), size=40, replace=False):
        online = report_features(reports.iloc[[i]].reset_index(drop=True), history)
        pd.testing.assert_frame_equal(online, batch.iloc[[i]].reset_index(drop=True))


def test_one_order_alone_gets_the_same_features_as_in_the_batch(tables):
    history = History.from_tables(tables)
    orders = tables["orders"]
    batch = order_features(orders, history)
    for i in np.random.default_rng(4).choice(len(orders), size=40, replace=False):
        pd.testing.assert_frame_equal(order_features(orders.iloc[[i]].reset_index(drop=True), history),
                                      batch.iloc[[i]].reset_index(drop=True))


def test_orders_in_chunks_get_the_same_features_as_in_one_batch(tables, monkeypatch):
    from features import build

    orders = tables["orders"].head(3000)
    history = History.from_tables(tables)
    whole = order_features(orders, history)
    monkeypatch.setattr(build, "ORDER_CHUNK_ROWS", 700)  # chunks of 700, the last one shorter
    pd.testing.assert_frame_equal(order_features(orders, history), whole, check_exact=True)


def test_every_feature_has_a_meaning_and_columns_follow_the_catalogue(tables):
    history = History.from_tables(tables)
    X = report_features(tables["reports"].head(50), history)
    assert list(X.columns) == list(REPORT_FEATURES)
    assert list(order_features(tables["orders"].head(50), history).columns) == list(ORDER_FEATURES)
    for kind, catalogue in FEATURES.items():
        for name, meaning in catalogue.items():
            assert meaning and len(meaning) > 10, f"{kind} feature {name} needs a one-line meaning"


def test_history_features_count_only_strictly_earlier_reports(tables):
    """Each report sees only the reports about its subject filed in an earlier second.

    History works in whole seconds: reports within the same second count as
    simultaneous, so neither sees the other (never a look-ahead).
    """
    reports = tables["reports"]
    history = History.from_tables(tables)
    X = report_features(reports, history)
    counts = reports.assign(n=X["subject_reports_30d"].to_numpy()).sort_values("created_at")
    busiest = counts["subject_id"].value_counts().index[0]
    seq = counts[counts["subject_id"] == busiest]
    t = seq["created_at"].dt.floor("s")
    expected = [((t < ti) & (t >= ti - pd.Timedelta(days=30))).sum() for ti in t]
    assert seq["n"].tolist() == expected


# ---------------------------------------------------------------------------
# Fraud features on a tiny hand-built marketplace: buyer b buys twice from s1 and once from s2.

def _ts(day: float) -> pd.Timestamp:
    return pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=day)


def _tiny_tables() -> dict:
    ts = lambda days: pd.Series([_ts(d) if d is not None else pd.NaT for d in days], dtype="datetime64[us, UTC]")  # noqa: E731
    accounts = pd.DataFrame({"account_id": ["b", "s1", "s2", "r"], "created_at": ts([-10, -100, -100, -100]),
                             "role": ["buyer", "seller", "seller", "buyer"], "verified": [False, True, True, True]})
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3"], "buyer_id": ["b", "b", "b"], "seller_id": ["s1", "s1", "s2"],
        "show_id": [None, None, None], "amount": [10.0, 20.0, 30.0], "created_at": ts([0, 1, 2]),
        "ship_by": ts([2, 3, 4]), "shipped_at": ts([1, 5, None]), "delivered_at": ts([3, 7, None]),
        "cancelled": [False, False, True], "cancelled_at": ts([None, None, 2.5]),
        "refunded": [False, True, False], "refunded_at": ts([None, 9, None]),
        "fraud": [True, False, False], "fraud_known_at": ts([20, None, None]),
    })
    reports = pd.DataFrame({
        "report_id": ["r1"], "created_at": ts([3]), "reporter_id": ["s1"], "reporter_type": ["seller"],
        "channel": ["direct_message"], "subject_id": ["b"], "show_id": [None], "order_id": ["o1"],
        "category": ["payment_fraud"], "description": ["The buyer used a stolen card."],
    })
    outcomes = pd.DataFrame({"report_id": ["r1"], "valid": [True], "severity": ["high"], "fraud_confirmed": [True],
                             "resolved_at": ts([5])})
    return {"accounts": accounts, "orders": orders, "reports": reports, "outcomes": outcomes}


def _order_at(day: float, seller: str = "s2", amount: float = 60.0) -> pd.DataFrame:
    return pd.DataFrame({"order_id": ["new"], "buyer_id": ["b"], "seller_id": [seller], "show_id": [None],
                         "amount": [amount], "created_at": pd.Series([_ts(day)], dtype="datetime64[us, UTC]")})


def test_buyer_fraud_features_on_a_hand_built_history():
    X = order_features(_order_at(40), History.from_tables(_tiny_tables())).iloc[0]
    assert X["buyer_buys_ever"] == 3
    assert X["buyer_buys_per_day"] == pytest.approx(3 / 50)
    assert X["buyer_buy_mean_ever"] == pytest.approx(20.0)
    assert X["amount_vs_buyer_mean_ever"] == pytest.approx(3.0)
    assert X["buyer_days_since_buy"] == pytest.approx(38.0)
    assert X["buyer_seller_spread"] == pytest.approx(2 / 3)
    assert X["buyer_chargebacks_per_mature_buy"] == pytest.approx(1 / 3)
    assert X["buyer_fraud_reports_ever"] == 1 and X["buyer_fraud_reports_30d"] == 0
    assert X["buyer_fraud_confirmed"] == 1


def test_seller_fraud_features_on_a_hand_built_history():
    X = order_features(_order_at(40, seller="s1"), History.from_tables(_tiny_tables())).iloc[0]
    assert X["seller_sold_ever"] == 2
    assert X["seller_buyer_spread"] == pytest.approx(1 / 2)
    assert X["seller_late_rate_ever"] == pytest.approx(1 / 2)  # o2 shipped after its ship-by time
    assert X["seller_refund_rate_ever"] == pytest.approx(1 / 2)
    assert X["seller_chargebacks_per_mature_sale"] == pytest.approx(1 / 2)
    assert X["amount_vs_seller_mean_ever"] == pytest.approx(60.0 / 15.0)


def test_an_order_without_a_ship_by_is_sold_but_never_late():
    tables = _tiny_tables()
    when = lambda day: pd.Series([_ts(day) if day is not None else pd.NaT], dtype="datetime64[us, UTC]")  # noqa: E731
    never_due = pd.DataFrame({
        "order_id": ["o4"], "buyer_id": ["b"], "seller_id": ["s1"], "show_id": [None], "amount": [15.0],
        "created_at": when(3), "ship_by": when(None), "shipped_at": when(None), "delivered_at": when(None),
        "cancelled": [False], "cancelled_at": when(None), "refunded": [False], "refunded_at": when(None),
        "fraud": [False], "fraud_known_at": when(None)})
    tables["orders"] = pd.concat([tables["orders"], never_due], ignore_index=True)
    X = order_features(_order_at(40, seller="s1"), History.from_tables(validate_tables(tables, require=["accounts"]))).iloc[0]
    assert X["seller_sold_ever"] == 3
    assert X["seller_late_rate_ever"] == pytest.approx(1 / 2)  # o2 of the two with a ship-by; o4 was never due


def test_fraud_labels_count_only_once_known():
    """Before the chargeback arrives and before the review is resolved, neither counts."""
    h = History.from_tables(_tiny_tables())
    early = order_features(_order_at(4), h).iloc[0]
    assert early["buyer_fraud_confirmed"] == 0 and early["buyer_fraud_reports_ever"] == 1
    assert np.isnan(early["buyer_chargebacks_per_mature_buy"])  # no purchase is 30 days old yet
    late = order_features(_order_at(32), h).iloc[0]
    assert late["buyer_fraud_confirmed"] == 1
    assert late["buyer_chargebacks_per_mature_buy"] == pytest.approx(1 / 2)  # o3 (day 2) is not 30 days old yet


def test_a_later_order_does_not_change_an_earlier_rows_features():
    tables = _tiny_tables()
    later = dict(tables)
    extra = _order_at(45, seller="s1").assign(
        ship_by=pd.Series([_ts(47)], dtype="datetime64[us, UTC]"), fraud=True,
        fraud_known_at=pd.Series([_ts(46)], dtype="datetime64[us, UTC]"))
    later["orders"] = pd.concat([tables["orders"], extra], ignore_index=True)
    row = _order_at(40)
    pd.testing.assert_frame_equal(order_features(row, History.from_tables(tables)),
                                  order_features(row, History.from_tables(later)))


def test_the_named_order_is_described_as_it_stood_when_placed_and_at_the_report():
    h = History.from_tables(_tiny_tables())
    report = _tiny_tables()["reports"].assign(
        order_id="o2", created_at=pd.Series([_ts(10)], dtype="datetime64[us, UTC]"))
    X = report_features(report, h).iloc[0]
    assert X["order_buyer_age_days"] == pytest.approx(11.0)
    assert X["order_buyer_buys_7d"] == 1  # o1, the day before o2
    assert X["order_buyer_days_since_buy"] == pytest.approx(1.0)
    assert X["order_vs_buyer_mean"] == pytest.approx(2.0)
    assert X["order_refunded"] == 1 and X["order_cancelled"] == 0 and X["order_fraud_known"] == 0
    assert X["subject_fraud_confirmed"] == 1  # r1 was resolved on day 5


def test_columns_matrix_is_the_matrix_of_the_feature_frame(tables):
    """The service scores from report_columns + columns_matrix; training from report_features + as_matrix.
    Both must give the models the same numbers, in any column order a model asks for."""
    from features.build import as_matrix, columns_matrix, report_columns

    h = History.from_tables(tables)
    reports = tables["reports"].sample(500, random_state=3)
    reports.loc[reports.index[:5], "category"] = "not-a-category"  # off the vocabulary: NaN code
    X = report_features(reports, h)
    columns = report_columns(reports, h)
    names = list(np.random.default_rng(1).permutation(list(REPORT_FEATURES)))
    np.testing.assert_array_equal(columns_matrix(columns, names), as_matrix(X[names]))
    assert np.isnan(columns_matrix(columns, ["category", "family"])[:5]).all()


@pytest.mark.parametrize("n", [1, 3, 64, 65, 300])  # either side of the one-by-one lookup limit
def test_report_columns_of_plain_lists_equal_those_of_the_frame(tables, n):
    """The service hands a request's reports to report_columns as plain lists (serving.input_checks.records_columns),
    training hands frames: the features must be the same numbers, including for unknown ids, missing
    reporters, orders, shows and descriptions, and off-vocabulary categories."""
    from features.build import report_columns
    from features.streams import ONE_BY_ONE_MAX_IDS

    assert ONE_BY_ONE_MAX_IDS == 64  # the parametrisation straddles it
    h = History.from_tables(tables)
    reports = tables["reports"].sample(n, random_state=n).reset_index(drop=True)
    edits = {"subject_id": "no-such-account", "reporter_id": None, "order_id": None, "show_id": None,
             "description": None, "category": "not-a-category", "channel": "carrier-pigeon"}
    for i, (column, value) in enumerate(edits.items()):
        if i < n:
            reports.loc[i, column] = value
    lists = {c: [None if pd.isna(v) else v for v in reports[c].tolist()] for c in reports.columns}
    from_frame, from_lists = report_columns(reports, h), report_columns(lists, h)
    assert list(from_frame) == list(from_lists) == list(REPORT_FEATURES)
    for name, a in from_frame.items():
        b = from_lists[name]
        if isinstance(a, pd.Categorical):
            assert a.dtype == b.dtype and np.array_equal(a.codes, b.codes), name
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
