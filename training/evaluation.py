"""Temporal evaluation: fit on the training window, then measure the models and every baseline on the
test window with the same metrics, so each figure can be read against first-in-first-out, the
rules, logistic regression, a depth-2 tree and (on simulated data) the oracle.

Fraud is judged as investigators work: k = the items a team can review per day
(`review_share` of the mean daily volume, or `k_per_day` set directly), precision and recall in the
top k of the whole window (k x days), and card precision@k per day over accounts. With
`exclude_known_fraud_accounts`, a test day leaves out the rows of accounts whose fraud was known
before it began (the card-precision protocol), for every ranker alike. Validity and severity get
ranking, agreement and calibration figures. The queue is replayed through a simulated team at
several capacities (training.replay), per family and severity.

`evaluate` returns plain data (`Evaluation.report`, JSON-ready, with the `protocol`: every sample
size and hold-out, from the constants that set them) plus the fitted models, so `docket train`
registers exactly the models the figures describe.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from features.streams import DAY
from policy.queue import QueuePolicy
from training import tuning
from training import window_scoring as R
from training.baselines import ORACLE
from training.evaluation_data import Prepared, Rows, Split, known_fraud_account_rows, order_split, report_split
from training.metrics import (
    binary_metrics,
    capacity_per_day,
    card_precision_at_k,
    expected_calibration_error,
    multiclass_metrics,
    precision_at_k,
    recall_at_k,
)
from training.models import BinaryModel
from training.replay import Team, replay, summarise
from training.windows import CALIBRATION_SHARE, TEST_SHARE, Windows, span_days

CAPACITIES: tuple[float, ...] = (0.8, 1.0, 1.2)
REVIEW_SHARE = 0.05  # fraud review capacity: 5% of the mean daily volume
URGENT = ("high", "critical")
REPLAY_MAX_REPORTS = 20_000  # the latest reports of a bigger test window are replayed (see queue_replay)
MIN_TRAIN_POSITIVES = 5
TASKS = ("fraud_reports", "fraud_orders", "validity", "severity")  # the report's keys that hold figures


@dataclass(frozen=True)
class Options:
    seed: int = 7
    threads: int = 2
    review_share: float = REVIEW_SHARE
    capacities: tuple[float, ...] = CAPACITIES
    k_per_day: int | None = None  # fraud reviews a day, set directly: then review_share is not used
    exclude_known_fraud_accounts: bool = False  # card-precision protocol: drop caught accounts' later test days

    def __post_init__(self) -> None:
        if self.k_per_day is not None and self.k_per_day < 1:
            raise ValueError(f"k_per_day must be at least 1, got {self.k_per_day}")


@dataclass
class Evaluation:
    windows: Windows
    report: dict  # JSON-ready figures
    report_models: R.ReportModels | None = None
    order_model: BinaryModel | None = None
    curves: dict = field(default_factory=dict)  # for plots: task -> ranker -> (y, scores)
    ranked: dict = field(default_factory=dict)  # fraud task -> its test rows (id, account, day), aligned to curves
    replays: pd.DataFrame | None = None  # one row per capacity x ordering: urgent mean / p90 minutes


def evaluate(prep: Prepared, windows: Windows, rules: QueuePolicy | None, options: Options = Options(),
             on_step: Callable[[str], None] = lambda step: None, keep_rows: bool = True) -> Evaluation:
    """Fit on `windows`' training window, measure on its test window (see the module docstring).

    `rules` is serving's queue policy (goals, aging, rules weights); without it there is no rules
    baseline and no queue replay (training may not import serving, so the caller passes it).
    `keep_rows=False` drops each task's rows from `prep` once its windows are cut (a caller evaluating
    one window needs only the cut rows: at 1M reports holding both cost 2 GB more at the peak).
    """
    report: dict = {"windows": windows.as_dict(), "protocol": protocol(options), "rows": {},
                    "skipped": dict(prep.skipped)}
    ev = Evaluation(windows=windows, report=report)
    if prep.reports is not None:
        split = report_split(prep.reports, windows)
        known = _known_fraud(split.test, prep.reports, "subject_id", options)
        if not keep_rows:
            prep.reports = None
        problem = _trainable(split, "reports", ("valid", "fraud"), windows)
        if problem:
            report["skipped"]["reports"] = problem
        else:
            _evaluate_reports(ev, split, rules, options, known)
        del split
    on_step("reports")
    if prep.orders is not None:
        split = order_split(prep.orders, windows, prep.data_end)
        known = _known_fraud(split.test, prep.orders, "buyer_id", options)
        if not keep_rows:
            prep.orders = None
        split = Split(split.train, split.calibration, split.test.take(~known))  # the same rows for every ranker
        problem = _trainable(split, "orders", ("fraud",), windows, excluded=int(known.sum()))
        if problem:
            report["skipped"]["orders"] = problem
        else:
            _evaluate_orders(ev, split, options, excluded=int(known.sum()))
    on_step("orders")
    return ev


def protocol(options: Options) -> dict:
    """How the figures are made: every sample size and hold-out, taken from the constants that set them
    (so evaluation.json cannot drift from the code), and the options that change what is measured."""
    fit = 1 - CALIBRATION_SHARE
    capacity = ({"set_by": "k", "k_per_day": options.k_per_day} if options.k_per_day is not None
                else {"set_by": "review_share", "review_share": options.review_share})
    excluded = ({"excluded_rows": "test rows of an account whose fraud was known before the row's (UTC) day began: "
                                  "orders by buyer (fraud_known_at of any of its orders), reports by subject (a "
                                  "resolved report about it confirmed as fraud); for every ranker alike"}
                if options.exclude_known_fraud_accounts else {})
    return {
        "model_fit_share": fit,
        "calibration_share": CALIBRATION_SHARE,
        "model_training": f"the models fit on the earliest {fit:.1%} of the labelled training-window rows; "
                          f"the latest {CALIBRATION_SHARE:.1%} calibrate their probabilities"
                          + ("; the order model is then refitted on both" if R.REFIT_ORDERS else ""),
        "logistic_regression_max_rows": R.LOGISTIC_MAX_ROWS,
        "baseline_training": "the baselines learn from every labelled training-window row (both parts); "
                             f"logistic regression from a seeded uniform sample of {R.LOGISTIC_MAX_ROWS:,} "
                             "rows when there are more",
        "fraud_model_search": tuning.budget(),
        "refit_after_calibration": {"fraud_orders": R.REFIT_ORDERS, "fraud_reports": R.REFIT_REPORT_FRAUD,
                                    "rule": "a refitted model learns again from the fit and calibration rows "
                                            "together with the same parameters, keeping the calibration map"},
        "review_capacity": capacity,
        "exclude_known_fraud_accounts": options.exclude_known_fraud_accounts,
        **excluded,
        "min_train_positives": MIN_TRAIN_POSITIVES,
        "queue_capacities": list(options.capacities),
        "queue_replay_max_reports": REPLAY_MAX_REPORTS,
        "default_test_share": TEST_SHARE,
        "window_bounds": "starts inclusive, ends exclusive; training labels as known at train_end",
    }


def nothing_evaluated(ev: Evaluation) -> str | None:
    """Why a window gave no figure at all (every task skipped, each for its own reason), or None when at
    least one task was measured: an evaluation with nothing in it must not pass for a result."""
    if any(task in ev.report for task in TASKS):
        return None
    reasons = "; ".join(f"{table}: {why}" for table, why in ev.report.get("skipped", {}).items())
    return f"nothing could be evaluated in {ev.windows.describe()}: {reasons or 'no task ran'}"


def _known_fraud(test: Rows, every: Rows, account: str, options: Options) -> np.ndarray:
    """The test rows to leave out under `exclude_known_fraud_accounts` (none without it)."""
    if not options.exclude_known_fraud_accounts:
        return np.zeros(len(test), bool)
    return known_fraud_account_rows(test, every, account)


def _trainable(split: Split, table: str, labels: Sequence[str], windows: Windows, excluded: int = 0) -> str | None:
    """Why this split cannot be trained and tested, and what to change, or None."""
    n = len(split.train) + len(split.calibration)
    if n == 0 or len(split.calibration) == 0:
        labelled = f"{'no' if n == 0 else f'only {n}'} labelled {table}"
        return f"{labelled} in the training window; {_more_labels(table, windows)}"
    if len(split.test) == 0:
        left = f" once the {excluded:,} rows of accounts with known fraud are left out" if excluded else ""
        settled = (f" whose label is settled by the end of the data (at least {windows.label_delay_days} days old "
                   "then)") if table == "orders" else ""
        return f"no {table} in the test window{settled}{left}; move --test-start or --test-end over the data"
    for label in labels:
        y = np.concatenate([split.train.labels[label], split.calibration.labels[label]])
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        if positives < MIN_TRAIN_POSITIVES or negatives < MIN_TRAIN_POSITIVES:
            return (f"{positives:,} positive and {negatives:,} negative '{label}' labels in the training window, "
                    f"fewer than {MIN_TRAIN_POSITIVES} of each; {_more_labels(table, windows)}")
    return None


def _more_labels(table: str, w: Windows) -> str:
    """What would give the training window more labels; for orders, the label delay against its length."""
    if table != "orders":
        return ("a report counts only once resolved before train-end (labels as known then): "
                "use an earlier --train-start or a later --train-end")
    span = w.train_end - w.train_start
    settled = (f"an order counts for training only once {w.label_delay_days} days old at train-end "
               "(labels as known then)")
    if w.label_delay_days >= span / pd.Timedelta(days=1):
        return (f"{settled}, and the {w.label_delay_days}-day label delay is as long as the {span_days(span)}-day "
                f"training window: use --label-delay-days well below {span_days(span)}, an earlier --train-start "
                "or a later --train-end")
    return f"{settled}: use a shorter --label-delay-days, an earlier --train-start or a later --train-end"


def _days(times: np.ndarray) -> np.ndarray:
    return times // DAY


def fraud_table(y: np.ndarray, scored: dict[str, tuple[np.ndarray, bool]], days: np.ndarray,
                accounts: np.ndarray, review_share: float, k_per_day: int | None = None) -> dict:
    """ROC AUC, AP, P@k, R@k, card precision@k, Brier, ECE per ranker; k from the review capacity:
    `k_per_day` reviews a day when given, else `review_share` of the mean daily volume."""
    n_days = max(1, len(np.unique(days)))
    k_day = k_per_day if k_per_day is not None else capacity_per_day(len(y), n_days, review_share)
    k = k_day * n_days
    rankers = {}
    for name, (s, is_p) in scored.items():
        rankers[name] = {
            **binary_figures(y, s, is_p), "precision_at_k": precision_at_k(y, s, k), "recall_at_k": recall_at_k(y, s, k),
            "card_precision_at_k": card_precision_at_k(days, accounts, y, s, k_day),
        }
    _oracle_shares(rankers, ("average_precision", "card_precision_at_k"))
    return {"rows": int(len(y)), "days": n_days, "positive_rate": float(np.mean(y)), "k_per_day": k_day, "k": k,
            "k_set_by": "review_share" if k_per_day is None else "k",
            "review_share": review_share if k_per_day is None else None, "rankers": rankers}


def binary_figures(y: np.ndarray, s: np.ndarray, is_probability: bool) -> dict:
    """Ranking figures for any score; Brier and ECE only for scores that claim to be probabilities."""
    if is_probability:
        m = binary_metrics(y, s)
        return {k: m[k] for k in ("roc_auc", "average_precision", "brier", "ece")}
    both = len(np.unique(y)) == 2
    return {"roc_auc": float(roc_auc_score(y, s)) if both else None,
            "average_precision": float(average_precision_score(y, s)) if both else None, "brier": None, "ece": None}


def _oracle_shares(rankers: dict, metrics: Sequence[str]) -> None:
    if ORACLE not in rankers:
        return
    for metric in metrics:
        best = rankers[ORACLE][metric]
        for row in rankers.values():
            row[f"share_of_oracle_{metric}"] = row[metric] / best if best else None


def _evaluate_reports(ev: Evaluation, split: Split, rules: QueuePolicy | None, options: Options,
                      known_fraud: np.ndarray) -> None:
    """Fit and measure the report models; `known_fraud` marks the test reports report fraud leaves out
    (their subject was caught before their day): validity, severity and the queue keep them all."""
    models = R.fit_report_models(split, options.seed, options.threads)
    scores = R.score_reports(models, split, rules, options.seed)
    ev.report_models = models
    test = split.test
    done = test.labels["resolved"]
    fraud_rows = done & ~known_fraud
    excluded = int((done & known_fraud).sum())
    ev.report["rows"].update({"reports_train": len(split.train), "reports_calibration": len(split.calibration),
                              "reports_logistic_regression": min(len(split.train) + len(split.calibration),
                                                                 R.LOGISTIC_MAX_ROWS),
                              "reports_test": int(done.sum()), "reports_test_unresolved": int((~done).sum()),
                              "reports_test_excluded_known_fraud_accounts": excluded})
    y_fraud, y_valid = test.labels["fraud"][fraud_rows], test.labels["valid"][done]

    def ranking(s: R.ReportScores, attr: str, rows: np.ndarray = done) -> tuple[np.ndarray, bool]:
        p = getattr(s, attr)
        return (p[rows], True) if p is not None else (s.priority[rows], False)

    ev.report["fraud_reports"] = {**fraud_table(
        y_fraud, {n: ranking(s, "p_fraud", fraud_rows) for n, s in scores.items()}, _days(test.times[fraud_rows]),
        test.frame["subject_id"].to_numpy(object)[fraud_rows], options.review_share, options.k_per_day),
        "excluded_known_fraud_account_rows": excluded, "search": models.fraud.search}
    validity = {}
    for name, s in scores.items():
        validity[name] = binary_figures(y_valid, *ranking(s, "p_valid"))
    _oracle_shares(validity, ("average_precision",))
    ev.report["validity"] = {"rows": int(done.sum()), "positive_rate": float(np.mean(y_valid)), "rankers": validity}
    sev = test.labels["severity"]
    is_valid = done & (sev >= 0)
    ev.report["severity"] = {"rows": int(is_valid.sum()), "rankers": {
        name: {**multiclass_metrics(sev[is_valid], s.severity[is_valid]),
               "top_class_ece": _top_class_ece(sev[is_valid], s.severity[is_valid])}
        for name, s in scores.items() if s.severity is not None}}
    ev.curves["fraud (reports)"] = {n: (y_fraud, ranking(s, "p_fraud", fraud_rows)[0]) for n, s in scores.items()}
    ev.ranked["fraud_reports"] = ranked_rows(test, fraud_rows, "report_id", "subject_id")
    ev.curves["validity"] = {n: (y_valid, ranking(s, "p_valid")[0]) for n, s in scores.items()}
    if rules is not None:
        ev.report["queue"], ev.replays = queue_replay(test, scores, rules, ev.windows, options.capacities)


def _top_class_ece(y: np.ndarray, probs: np.ndarray) -> float:
    """Calibration of the predicted class: its probability against how often it is right."""
    return expected_calibration_error((probs.argmax(axis=1) == y).astype(int), probs.max(axis=1))


def _evaluate_orders(ev: Evaluation, split: Split, options: Options, excluded: int = 0) -> None:
    """Fit and measure the order model; `split.test` comes without the `excluded` rows of known fraud accounts."""
    model = R.fit_order_model(split, options.seed, options.threads)
    ev.order_model = model
    scored = R.score_orders(model, split, options.seed)
    test = split.test
    y = test.labels["fraud"]
    ev.report["rows"].update({"orders_train": len(split.train), "orders_calibration": len(split.calibration),
                              "orders_logistic_regression": min(len(split.train) + len(split.calibration),
                                                                R.LOGISTIC_MAX_ROWS),
                              "orders_test": len(test), "orders_test_excluded_known_fraud_accounts": excluded})
    ev.report["fraud_orders"] = {**fraud_table(y, scored, _days(test.times), test.frame["buyer_id"].to_numpy(object),
                                               options.review_share, options.k_per_day),
                                 "excluded_known_fraud_account_rows": excluded, "search": model.search}
    ev.curves["fraud (orders)"] = {n: (y, s) for n, (s, _) in scored.items()}
    ev.ranked["fraud_orders"] = ranked_rows(test, np.ones(len(test), bool), "order_id", "buyer_id")


def ranked_rows(test: Rows, rows: np.ndarray, id_column: str, account_column: str) -> pd.DataFrame:
    """Who the fraud figures rank: each test row's id, account and UTC day, in the order of the scores."""
    days = _days(test.times[rows])
    return pd.DataFrame({"id": test.frame[id_column].to_numpy(object)[rows],
                         "account": test.frame[account_column].to_numpy(object)[rows],
                         "day": pd.to_datetime(days * DAY, unit="s").date})


def queue_replay(test: Rows, scores: dict[str, R.ReportScores], rules: QueuePolicy, windows: Windows,
                 capacities: Sequence[float]) -> tuple[dict, pd.DataFrame]:
    """Replay the test window's reports under each ordering and capacity; summaries per family x severity.

    When `rules` can group reports into the live queue's alert cases (QueuePolicy.alert_groups), the
    grouping is computed once for the window and every ordering, first in, first out included, replays it.
    A window of more than REPLAY_MAX_REPORTS reports replays only its latest REPLAY_MAX_REPORTS (a
    contiguous stretch, so arrivals stay real; the arrival rate is measured over that stretch): the
    replay picks case by case in Python, and its figures are rates that a stretch this long estimates well.
    """
    start = max(0, len(test) - REPLAY_MAX_REPORTS)
    if start:
        test = test.take(np.arange(len(test)) >= start)
        scores = {n: R.ReportScores(s.priority[start:]) for n, s in scores.items()}
    f = test.frame
    alert_groups = getattr(rules, "alert_groups", None)
    alerts = alert_groups(f) if alert_groups is not None else None
    arrivals = pd.DataFrame({
        "report_id": f["report_id"].astype(str), "created_at": f["created_at"], "category": f["category"].astype(str),
        "family": f["family"], "severity": f["severity"].astype(object),
        "valid": f["valid"].fillna(False).astype(bool),
    })
    first = windows.test_start if not start else f["created_at"].iloc[0]
    minutes = (windows.test_end - first) / pd.Timedelta(minutes=1)
    urgent = (arrivals["valid"] & arrivals["severity"].isin(URGENT)).to_numpy()
    tables, headline = [], []
    for cap in capacities:
        for name, s in scores.items():
            policy = "fifo" if name == R.FIFO else "priority"
            result = replay(arrivals, s.priority, Team(cap), rules.goals_hours, rules.aging_points_per_goal, policy,
                            aging_cap_points=rules.aging_cap_points, window_minutes=minutes, alerts=alerts)
            summary = summarise(result, arrivals)
            summary.insert(0, "ordering", name)
            summary.insert(0, "capacity", cap)
            tables.append(summary)
            t = result["time_to_action"].to_numpy(float)[urgent]
            headline.append({"capacity": cap, "ordering": name, "urgent_cases": int(urgent.sum()),
                             "urgent_mean_minutes": float(t.mean()) if len(t) else None,
                             "urgent_p90_minutes": float(np.percentile(t, 90)) if len(t) else None,
                             "goal_missed_share": float(result["goal_missed"].to_numpy()[arrivals["valid"]].mean())})
    head = pd.DataFrame(headline)
    fifo = head[head["ordering"] == R.FIFO].set_index("capacity")["urgent_mean_minutes"]
    head["urgent_speedup_vs_fifo"] = head["capacity"].map(fifo) / head["urgent_mean_minutes"]
    detail = pd.concat(tables, ignore_index=True)
    return {"capacities": list(capacities), "replayed_reports": len(f), "replayed_from": first.isoformat(),
            "urgent": head.to_dict("records"),
            "by_family_severity": detail.to_dict("records")}, head


def flatten(report: dict) -> dict[str, float]:
    """The scalar figures as 'task.ranker.metric' (queue: 'queue.capacity.ordering.metric'), for MLflow and folds."""
    out: dict[str, float] = {}
    for task in ("fraud_reports", "fraud_orders", "validity", "severity"):
        for ranker, metrics in report.get(task, {}).get("rankers", {}).items():
            for metric, value in metrics.items():
                if value is not None and np.isfinite(value):
                    out[f"{task}.{ranker}.{metric}"] = float(value)
    for row in report.get("queue", {}).get("urgent", []):
        for metric in ("urgent_mean_minutes", "urgent_p90_minutes", "goal_missed_share", "urgent_speedup_vs_fifo"):
            value = row.get(metric)
            if value is not None and np.isfinite(value):
                out[f"queue.{row['capacity']:g}.{row['ordering']}.{metric}"] = float(value)
    return out


def across_folds(reports: Sequence[dict]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, min and max of every scalar figure over the folds that have it."""
    flat = [flatten(r) for r in reports]
    keys = sorted(set().union(*flat))
    out = {}
    for key in keys:
        values = np.array([f[key] for f in flat if key in f])
        out[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "min": float(values.min()), "max": float(values.max()), "folds": int(len(values))}
    return out

