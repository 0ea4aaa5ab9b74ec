"""Point-in-time correctness and batch/online parity of the report and order features."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import ORDER_TIMES, known_at

from features.build import FEATURES, ORDER_FEATURES, REPORT_FEATURES, History, order_features, report_features



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
    later_r = out["reports"]["created_at"] > t
    subjects = out["reports"]["subject_id"].to_numpy()
    out["reports"].loc[later_r, "subject_id"] = rng.permutation(subjects[later_r.to_numpy()])
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
