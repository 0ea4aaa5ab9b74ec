"""The models and every baseline, fitted on one training window and scored on its test window.

A "ranker" is anything that orders the test rows: the models, logistic regression, the depth-2
tree, the policy's rules, first-in-first-out, and the simulator's oracle. Rankers that estimate
probabilities give P(valid), P(severity) and P(fraud), and their queue priority is
`training.scoring.priority` of those, exactly as the service computes it for the models; the
rules give a priority directly; FIFO ranks by age.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import vocabulary as V
from features.build import ORDER_FEATURES, REPORT_FEATURES, as_matrix
from policy.queue import QueuePolicy
from training import baselines as B
from training.evaluation_data import Split
from training.models import BinaryModel, MulticlassModel
from training.tuning import search
from training.scoring import priority

# Logistic regression (lbfgs, up to 2000 iterations, four fits) costs far more than the models it is a
# baseline for once the training window holds hundreds of thousands of rows; beyond this many it learns
# from a seeded sample (a linear model with ~100 coefficients gains nothing measurable from more).
LOGISTIC_MAX_ROWS = 50_000

# Refit after calibrating (BinaryModel.refit): the order model's calibration rows are its freshest labelled
# orders, and fraud patterns move; the report fraud model gained nothing measurable from it (AP -0.001 and
# -0.002 on two seeds at 30,000 reports) and it would cost the most time at 1M reports, so it calibrates
# on a held-out slice as before.
REFIT_ORDERS = True
REFIT_REPORT_FRAUD = False

MODEL, LOGISTIC, TREE, RULES, FIFO, ORACLE = "model", "logistic_regression", "depth2_tree", "rules", "fifo", "oracle"
N_SEVERITIES = len(V.SEVERITIES)


@dataclass
class ReportScores:
    """One ranker's view of the test reports; probabilities are None for rankers that only order."""

    priority: np.ndarray
    p_valid: np.ndarray | None = None
    severity: np.ndarray | None = None  # (n, 4) over V.SEVERITIES
    p_fraud: np.ndarray | None = None

    @property
    def is_probability(self) -> bool:
        return self.p_valid is not None


@dataclass
class ReportModels:
    validity: BinaryModel
    severity: MulticlassModel
    fraud: BinaryModel


# What the validity model must obey whatever its training window says: the more of a subject's earlier reports
# were upheld, the likelier a new report about it is valid (LightGBM monotone constraints; without one, 25 of
# 400 subjects lost up to 0.007 of p_valid as upheld reports were added: tests/model/test_behavioral.py).
VALIDITY_INCREASING = ("subject_reports_valid_rate", "subject_reports_resolved")


def monotone(features: list[str], increasing: tuple[str, ...]) -> dict:
    """LightGBM parameters constraining the model to never decrease in the `increasing` features."""
    return {"monotone_constraints": [1 if f in increasing else 0 for f in features]}


def fit_report_models(split: Split, seed: int, threads: int) -> ReportModels:
    """Validity, severity (on valid reports) and report fraud; each calibrated on the later rows. The rows are
    converted to LightGBM's matrix once for the three models."""
    cols = list(REPORT_FEATURES)
    tr, cal = split.train, split.calibration
    M, M_cal = as_matrix(tr.X[cols]), as_matrix(cal.X[cols])
    validity = BinaryModel(cols, seed=seed, num_threads=threads, params=monotone(cols, VALIDITY_INCREASING)).fit(
        M, tr.labels["valid"], M_cal, cal.labels["valid"])
    fraud = tuned(cols, M, tr.labels["fraud"], seed, threads, refit=REFIT_REPORT_FRAUD).fit(
        M, tr.labels["fraud"], M_cal, cal.labels["fraud"])
    valid, valid_cal = tr.labels["severity"] >= 0, cal.labels["severity"] >= 0
    severity = MulticlassModel(cols, list(V.SEVERITIES), seed=seed, num_threads=threads).fit(
        M[valid], tr.labels["severity"][valid], M_cal[valid_cal], cal.labels["severity"][valid_cal])
    return ReportModels(validity, severity, fraud)


def fit_order_model(split: Split, seed: int, threads: int) -> BinaryModel:
    tr, cal = split.train, split.calibration
    cols = list(ORDER_FEATURES)
    M = as_matrix(tr.X[cols])
    return tuned(cols, M, tr.labels["fraud"], seed, threads, refit=REFIT_ORDERS).fit(
        M, tr.labels["fraud"], as_matrix(cal.X[cols]), cal.labels["fraud"])


def tuned(cols: list[str], M: np.ndarray, y: np.ndarray, seed: int, threads: int, refit: bool) -> BinaryModel:
    """A fraud model with the parameters training.tuning's search chose on its training rows (not yet fitted)."""
    model = BinaryModel(cols, seed=seed, num_threads=threads, refit=refit)
    found = search(M, y, cols, model.lgb_params(), model.n_estimators, seed, threads)
    model.params, model.search = found.params, found.as_dict()
    return model


def from_probabilities(p_valid: np.ndarray, severity: np.ndarray, p_fraud: np.ndarray) -> ReportScores:
    return ReportScores(priority(p_valid, severity, p_fraud), p_valid, severity, p_fraud)


def _training_labels(split: Split) -> dict[str, np.ndarray]:
    """Baselines need no calibration window, so they learn from all labelled training rows (train, then
    calibration)."""
    tr, cal = split.train, split.calibration
    return {k: np.concatenate([tr.labels[k], cal.labels[k]]) for k in tr.labels}


def _training_X(split: Split, positions: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """`columns` of the training rows at sorted `positions` (counted as in _training_labels), taken from each
    part: a copy of all the training rows first cost about a GB at 1M reports."""
    tr, cal = split.train, split.calibration
    parts = [tr.X.iloc[positions[positions < len(tr)]], cal.X.iloc[positions[positions >= len(tr)] - len(tr)]]
    return pd.concat([p[columns] for p in parts], ignore_index=True)


def _baseline_sample(n: int, seed: int) -> np.ndarray:
    """Positions of the rows a logistic-regression baseline learns from: all of them up to
    LOGISTIC_MAX_ROWS, else a seeded uniform sample of that many, in time order."""
    if n <= LOGISTIC_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, LOGISTIC_MAX_ROWS, replace=False))


def score_reports(models: ReportModels, split: Split, rules: QueuePolicy | None,
                  seed: int) -> dict[str, ReportScores]:
    """Every ranker's scores for every test-window report (resolved or not); no rules ranker without weights."""
    test = split.test
    M = as_matrix(test.X[list(REPORT_FEATURES)])  # once for the three models
    out = {MODEL: from_probabilities(models.validity.predict_proba(M), models.severity.predict_proba(M),
                                     models.fraud.predict_proba(M))}
    y = _training_labels(split)
    valid = y["severity"] >= 0
    cols = list(REPORT_FEATURES)
    X_test = test.X[cols]
    keep = _baseline_sample(len(valid), seed)
    X_lr, y_lr = _training_X(split, keep, cols), {k: v[keep] for k, v in y.items()}
    v_keep = np.flatnonzero(valid)[_baseline_sample(int(valid.sum()), seed)]
    out[LOGISTIC] = from_probabilities(
        B.logistic_regression_scores(X_lr, y_lr["valid"], X_test, seed),
        B.logistic_regression_proba(_training_X(split, v_keep, cols), y["severity"][v_keep], X_test, seed,
                                    N_SEVERITIES),
        B.logistic_regression_scores(X_lr, y_lr["fraud"], X_test, seed),
    )
    raw = pd.concat([split.train.frame[B.RAW_REPORT_FIELDS], split.calibration.frame[B.RAW_REPORT_FIELDS]],
                    ignore_index=True)
    out[TREE] = from_probabilities(
        B.depth2_tree_scores(raw, y["valid"], test.frame),
        B.depth2_tree_proba(raw[valid].reset_index(drop=True), y["severity"][valid], test.frame, N_SEVERITIES),
        B.depth2_tree_scores(raw, y["fraud"], test.frame),
    )
    if rules is not None:
        out[RULES] = ReportScores(B.rules_scores(test.frame, test.X, rules))
    out[FIFO] = ReportScores(B.fifo_scores(test.times))
    if test.oracle is not None:
        o = test.oracle
        out[ORACLE] = from_probabilities(B.oracle_scores(o["p_valid"]),
                                         o[[f"p_severity_{s}" for s in V.SEVERITIES]].to_numpy(float),
                                         B.oracle_scores(o["p_fraud"]))
    return out


def score_orders(model: BinaryModel, split: Split, seed: int) -> dict[str, tuple[np.ndarray, bool]]:
    """Every ranker's fraud score for the test orders, with whether it claims to be a probability."""
    test = split.test
    y = _training_labels(split)
    cols = list(ORDER_FEATURES)
    keep = _baseline_sample(len(y["fraud"]), seed)
    out = {
        MODEL: (model.predict_proba(test.X), True),
        LOGISTIC: (B.logistic_regression_scores(_training_X(split, keep, cols), y["fraud"][keep], test.X[cols], seed),
                   True),
        TREE: (B.depth2_feature_tree_scores([split.train.X[cols], split.calibration.X[cols]], y["fraud"],
                                            test.X[cols]), True),
        FIFO: (B.fifo_scores(test.times), False),
    }
    if test.oracle is not None:
        out[ORACLE] = (B.oracle_scores(test.oracle["p_fraud"]), True)
    return out
