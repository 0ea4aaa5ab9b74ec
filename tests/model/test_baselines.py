"""Models and baselines rank the same future window: who beats whom, and by how much.

Every learned ranking is fit on the training part of the temporal split (the
window LightGBM is fit on) and scored on the validation window. Capacity: a team
that reviews 5% of the daily volume. Margins are set at about half of what was
measured on the session simulation (seed 11; numbers in the comments); the
baseline margins were checked to hold with simulator seeds 3 and 5 too (the
LightGBM ones were measured on seed 11 only). Run with -s to print the tables.
"""
from __future__ import annotations

from dataclasses import replace

import mlflow
import numpy as np
import pandas as pd
import pytest

from features import settings as S
from features.build import History
from features.history import DAY
from training import baselines as B
from training import registry
from training.datasets import Labelled, labelled_reports, temporal_split
from training.metrics import capacity_per_day, card_precision_at_k

SHARE = 0.05
PROBABILITIES = ("logistic_regression", "depth2_tree", "lightgbm", B.ORACLE)
TRUTH = {"fraud": "p_fraud", "valid": "p_valid"}


@pytest.fixture(scope="module")
def window(tables) -> dict:
    reports = labelled_reports(tables, History.from_tables(tables))
    train, _, test = temporal_split(reports.times)
    return {"train": reports.take(train), "test": reports.take(test), "tables": tables}


def _capacity(test: Labelled) -> tuple[np.ndarray, int, int]:
    days = test.times // DAY
    n_days = len(np.unique(days))
    per_day = capacity_per_day(len(test.ids), n_days, SHARE)
    return days, per_day, per_day * n_days


def _baseline_scores(window: dict, label: str) -> dict[str, np.ndarray]:
    """Every baseline's scores for `label`, computed once per module (the fits take seconds)."""
    from serving.queue_policy import load_queue_policy

    cache = window.setdefault("scores", {})
    if label not in cache:
        cache[label] = _fit_baselines(window, label, load_queue_policy())
    return dict(cache[label])


def _fit_baselines(window: dict, label: str, policy) -> dict[str, np.ndarray]:
    tr, te = window["train"], window["test"]
    truth = window["tables"]["truth_reports"].set_index("report_id")
    return {
        "fifo": B.fifo_scores(te.times),
        "rules": B.rules_scores(te.X, te.X, policy),
        "logistic_regression": B.logistic_regression_scores(tr.X, tr.labels[label], te.X, seed=0),
        "depth2_tree": B.depth2_tree_scores(tr.X, tr.labels[label], te.X),
        B.ORACLE: B.oracle_scores(truth.loc[te.ids, TRUTH[label]].to_numpy()),
    }


def _table(window: dict, label: str, scores: dict[str, np.ndarray]) -> pd.DataFrame:
    te = window["test"]
    days, per_day, k = _capacity(te)
    table = B.compare(te.labels[label], scores, k, probabilities=[n for n in PROBABILITIES if n in scores])
    subjects = window["tables"]["reports"].set_index("report_id").loc[te.ids, "subject_id"].to_numpy()
    table[f"card_precision@{per_day}/day"] = [
        card_precision_at_k(days, subjects, te.labels[label], s, per_day) for s in scores.values()]
    _print(f"reports, label={label}, n={len(te.ids)}, positive rate={te.labels[label].mean():.3f}", table)
    return table


def _print(title: str, table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(f"\n{title}\n", table.drop(columns="is_probability").round(3))


@pytest.fixture(scope="module")
def fraud(window) -> pd.DataFrame:
    return _table(window, "fraud", _baseline_scores(window, "fraud"))


@pytest.fixture(scope="module")
def validity(window) -> pd.DataFrame:
    return _table(window, "valid", _baseline_scores(window, "valid"))


def test_rules_baseline_gives_the_same_numbers_as_the_serving_rules(window):
    from serving.queue_policy import load_queue_policy, rules_priority

    te = window["test"]
    policy = load_queue_policy()
    changed = replace(policy, reporter_weight={**policy.reporter_weight, "buyer": 0.9},
                      category_severity={**policy.category_severity, "spam": 0.6}, record_step=0.5, record_cap=2)
    raw = window["tables"]["reports"].set_index("report_id").loc[te.ids].reset_index()
    for qp in (policy, changed):
        np.testing.assert_array_equal(B.rules_scores(raw, te.X, qp), rules_priority(raw, te.X, qp))
    assert not np.array_equal(B.rules_scores(raw, te.X, policy), B.rules_scores(raw, te.X, changed))


def test_oracle_has_the_highest_report_fraud_average_precision(fraud):
    ap = fraud["average_precision"]
    # measured: oracle 0.804, logistic regression 0.644, depth-2 tree 0.306, rules 0.090, FIFO 0.052
    assert ap.idxmax() == B.ORACLE
    assert ap[B.ORACLE] - ap.drop(B.ORACLE).max() >= 0.08, ap


@pytest.mark.parametrize("task", ["fraud", "validity"])
def test_depth2_tree_and_fifo_rank_clearly_below_logistic_regression(task, request):
    table = request.getfixturevalue(task)
    ap = table["average_precision"]
    # measured AP, fraud: LR 0.644, tree 0.306, FIFO 0.052; validity: LR 0.879, tree 0.573, FIFO 0.483
    assert ap["logistic_regression"] - ap["depth2_tree"] >= 0.15, ap
    assert ap["logistic_regression"] - ap["fifo"] >= 0.3, ap
    precision = table.filter(like="precision@").iloc[:, 0]
    # measured precision@k, fraud: LR 0.66, tree 0.45, FIFO 0.05; validity: LR 0.93, tree 0.75, FIFO 0.40
    assert precision["logistic_regression"] - precision["depth2_tree"] >= 0.1, precision
    assert precision["logistic_regression"] - precision["fifo"] >= 0.25, precision


def test_rules_rank_fraud_better_than_fifo(fraud):
    # measured ROC AUC: rules 0.663, FIFO 0.468 (seed 3: 0.704 / 0.475; seed 5: 0.660 / 0.497)
    assert fraud.loc["rules", "roc_auc"] - fraud.loc["fifo", "roc_auc"] >= 0.1, fraud
    assert fraud.loc["rules", "average_precision"] > fraud.loc["fifo", "average_precision"], fraud


def test_rules_rank_severe_reports_better_than_fifo(window):
    """The rules weigh category severity, so they should put valid high/critical reports first.

    (They do not rank validity itself: ROC AUC 0.51-0.54 over seeds 3, 5, 11, and their lead
    over FIFO there changes sign with the seed, so no test claims it.)
    """
    te = window["test"]
    severe = (te.labels["severity"] >= 2).astype(int)
    scores = _baseline_scores(window, "valid")
    table = B.compare(severe, {"fifo": scores["fifo"], "rules": scores["rules"]}, k=_capacity(te)[2])
    _print(f"reports, label=valid with severity high or critical, positive rate={severe.mean():.3f}", table)
    # measured ROC AUC: rules 0.729, FIFO 0.571 (seed 3: 0.693 / 0.512; seed 5: 0.663 / 0.468)
    assert table.loc["rules", "roc_auc"] - table.loc["fifo", "roc_auc"] >= 0.08, table


def test_trained_lightgbm_is_no_worse_than_logistic_regression_and_near_the_oracle(window, trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    te = window["test"]
    models = {"fraud": registry.load(S.FRAUD_MODEL, S.CHAMPION).bundle.report,
              "valid": registry.load(S.SEVERITY_MODEL, S.CHAMPION).bundle.validity}
    for label, model in models.items():
        scores = _baseline_scores(window, label)
        scores = {**{n: s for n, s in scores.items() if n != B.ORACLE}, "lightgbm": model.predict_proba(te.X),
                  B.ORACLE: scores[B.ORACLE]}
        table = _table(window, label, scores)
        ap = table["average_precision"]
        # measured AP, fraud: LightGBM 0.626, LR 0.644, oracle 0.804; validity: 0.879, 0.879, 0.910
        assert ap["lightgbm"] >= ap["logistic_regression"] - 0.05, ap
        assert table.loc["lightgbm", "share_of_oracle_ap"] >= (0.7 if label == "fraud" else 0.9), table
