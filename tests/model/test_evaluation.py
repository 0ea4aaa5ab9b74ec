"""The temporal evaluation behind `docket train` and `docket evaluate`, on the session's 20k simulation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.streams import DAY
from training.evaluation import across_folds, flatten
from training.evaluation_data import order_split, prepare, report_split
from training.windows import Windows, resolve_windows

RANKERS = {"model", "logistic_regression", "depth2_tree", "rules", "fifo", "oracle"}


@pytest.fixture(scope="module")
def report(trained) -> dict:
    return trained.evaluation.report


@pytest.fixture(scope="module")
def prepared(tables):
    return prepare(tables)


def test_every_task_is_measured_for_the_models_and_every_baseline(report):
    assert set(report["fraud_reports"]["rankers"]) == RANKERS
    assert set(report["validity"]["rankers"]) == RANKERS
    assert set(report["fraud_orders"]["rankers"]) == RANKERS - {"rules"}  # the rules rank reports only
    assert {"model", "logistic_regression", "depth2_tree", "oracle"} == set(report["severity"]["rankers"])
    fraud = report["fraud_reports"]["rankers"]["model"]
    for metric in ("roc_auc", "average_precision", "precision_at_k", "recall_at_k", "card_precision_at_k", "brier", "ece",
                   "share_of_oracle_average_precision"):
        assert 0 <= fraud[metric] <= 1.0001, metric
    assert report["fraud_reports"]["rankers"]["fifo"]["brier"] is None  # an order is not a probability
    assert report["fraud_reports"]["rankers"]["oracle"]["share_of_oracle_average_precision"] == 1.0


def test_k_is_the_daily_review_capacity(report):
    for task in ("fraud_reports", "fraud_orders"):
        fraud = report[task]
        assert fraud["k_per_day"] == max(1, round(0.05 * fraud["rows"] / fraud["days"]))
        assert fraud["k"] == fraud["k_per_day"] * fraud["days"]


def test_models_beat_fifo_rules_and_the_tree_on_fraud_and_validity(report):
    for task in ("fraud_reports", "fraud_orders", "validity"):
        r = report[task]["rankers"]
        for baseline in ("fifo", "rules", "depth2_tree"):
            if baseline in r:
                assert r["model"]["average_precision"] > r[baseline]["average_precision"] + 0.05, (task, baseline)
        assert r["model"]["average_precision"] <= r["oracle"]["average_precision"] + 0.02, task


def test_queue_is_replayed_at_three_capacities_per_family_and_severity(report):
    urgent = pd.DataFrame(report["queue"]["urgent"])
    assert sorted(urgent["capacity"].unique()) == [0.8, 1.0, 1.2]
    assert set(urgent["ordering"]) == RANKERS
    fifo = urgent[urgent["ordering"] == "fifo"]
    assert (fifo["urgent_speedup_vs_fifo"] == 1.0).all()
    # More staff, shorter waits, for every ordering.
    for _, rows in urgent.groupby("ordering"):
        assert rows.sort_values("capacity")["urgent_mean_minutes"].is_monotonic_decreasing
    detail = pd.DataFrame(report["queue"]["by_family_severity"])
    assert {"capacity", "ordering", "family", "severity", "mean_minutes", "p90_minutes", "goal_missed_share"} <= set(detail)
    assert {"behavioral", "fraud", "logistics"} <= set(detail["family"])


def test_model_ordering_acts_on_urgent_cases_sooner_than_fifo_at_full_capacity(report):
    urgent = pd.DataFrame(report["queue"]["urgent"]).set_index(["capacity", "ordering"])
    assert urgent.loc[(1.0, "model"), "urgent_speedup_vs_fifo"] > 1.5


def test_training_labels_are_the_ones_known_when_training_ends(prepared, tables):
    w = resolve_windows(tables)
    end = int(w.train_end.value // 10**9)
    reports = report_split(prepared.reports, w)
    assert (reports.train.known < end).all() and (reports.calibration.known < end).all()
    assert reports.calibration.times.min() >= reports.train.times.max()  # calibration is the latest part
    orders = order_split(prepared.orders, w, prepared.data_end)
    # No order younger than the label delay when training ends, even one whose fraud was already known:
    # keeping those would choose rows by their label.
    for part in (orders.train, orders.calibration):
        assert len(part) and (part.times <= end - w.label_delay_days * DAY).all()
    assert orders.train.labels["fraud"].sum() and orders.calibration.labels["fraud"].sum()
    # A fraud known only after training ended is labelled genuine in training, as it was then.
    late = (prepared.orders.known >= end) & (prepared.orders.known < np.iinfo(np.int64).max) & \
        (prepared.orders.times <= end - w.label_delay_days * DAY)
    late_ids = set(prepared.orders.frame["order_id"][late])
    assert late_ids, "the simulation should have chargebacks that arrive after training ends"
    all_train = pd.concat([orders.train.frame.assign(y=orders.train.labels["fraud"]),
                           orders.calibration.frame.assign(y=orders.calibration.labels["fraud"])])
    assert (all_train[all_train["order_id"].isin(late_ids)]["y"] == 0).all()


def test_test_orders_have_settled_labels_whatever_the_label(prepared, tables):
    """No test order younger than the label delay at the data's end, fraud or not: keeping the young ones whose
    fraud is already known would select on the label."""
    w = resolve_windows(tables)
    test = order_split(prepared.orders, w, prepared.data_end).test
    assert len(test) and not (test.times > prepared.data_end - w.label_delay_days * DAY).any()
    window = (prepared.orders.times >= int(w.test_start.timestamp())) & (
        prepared.orders.times <= prepared.data_end - w.label_delay_days * DAY)
    assert len(test) == int(window.sum())  # and every settled order of the window is there


def test_flatten_and_fold_spread(report):
    flat = flatten(report)
    assert flat["fraud_reports.model.average_precision"] == report["fraud_reports"]["rankers"]["model"]["average_precision"]
    other = {**report, "fraud_reports": {"rankers": {"model": {"average_precision": 0.0}}}}
    spread = across_folds([report, other])
    ap = spread["fraud_reports.model.average_precision"]
    assert ap["folds"] == 2 and ap["mean"] == pytest.approx(flat["fraud_reports.model.average_precision"] / 2)
    assert ap["std"] > 0
    assert spread["validity.model.roc_auc"]["folds"] == 2 and spread["validity.model.roc_auc"]["std"] == 0


def test_windows_must_be_in_time_order():
    t = pd.Timestamp("2025-06-01", tz="UTC")
    with pytest.raises(ValueError, match="train-start < train-end"):
        Windows(t, t + pd.Timedelta(days=10), t + pd.Timedelta(days=5), t + pd.Timedelta(days=20), 7)


def test_a_big_test_window_replays_only_its_latest_reports(prepared, tables, monkeypatch):
    from policy.file import load_queue_policy
    from training import evaluation
    from training.window_scoring import ReportScores

    w = resolve_windows(tables)
    test = report_split(prepared.reports, w).test
    monkeypatch.setattr(evaluation, "REPLAY_MAX_REPORTS", 1000)
    scores = {"fifo": ReportScores(-test.times.astype(float)), "model": ReportScores(np.linspace(0, 100, len(test)))}
    queue, head = evaluation.queue_replay(test, scores, load_queue_policy(), w, (1.0,))
    assert queue["replayed_reports"] == 1000
    assert queue["replayed_from"] == test.frame["created_at"].iloc[len(test) - 1000].isoformat()
    assert set(head["ordering"]) == {"fifo", "model"}
