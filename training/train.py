"""Train, validate and register both models: the `docket train` stage.

Train on the past, calibrate on the window after it, validate on the most
recent window; log everything to MLflow; register `docket-severity` and
`docket-fraud` and point an alias (by default `champion`) at the new versions.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd

from features import settings as S
from features.build import ORDER_FEATURES, REPORT_FEATURES, History
from features import vocabulary as V
from training import plots, registry
from training.baselines import depth2_tree_scores
from training.bundles import FraudBundle, SeverityBundle
from training.datasets import Labelled, labelled_orders, labelled_reports, temporal_split
from training.metrics import binary_metrics, multiclass_metrics
from training.models import BinaryModel, MulticlassModel

TRAIN_STEPS = ("features", "validity", "severity", "fraud", "plots", "register")
EXPERIMENT = "docket"


@dataclass
class TrainResult:
    run_id: str
    versions: dict[str, str]
    metrics: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)


def data_fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    """A content hash of the raw tables, so a run says exactly which data it saw."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def raw_field_tree_auc(train: Labelled, test: Labelled, label: str = "valid") -> float:
    """ROC AUC of a depth-2 tree on the raw report fields alone: the bar the full model must clear."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(test.labels[label], depth2_tree_scores(train.X, train.labels[label], test.X)))


def _split(data: Labelled) -> tuple[Labelled, Labelled, Labelled]:
    tr, cal, te = temporal_split(data.times)
    return data.take(tr), data.take(cal), data.take(te)


def train(
    tables: dict[str, pd.DataFrame],
    settings: S.Settings,
    alias: str = S.CHAMPION,
    on_step: Callable[[str], None] = lambda step: None,
) -> TrainResult:
    """Fit all four classifiers, log them with metrics and plots, register both bundles under `alias`."""
    seed, threads = settings.seed, max(settings.num_threads, 2)
    history = History.from_tables(tables)
    reports = labelled_reports(tables, history)
    orders = labelled_orders(tables, history)
    on_step("features")

    r_tr, r_cal, r_te = _split(reports)
    o_tr, o_cal, o_te = _split(orders)
    report_cols = list(REPORT_FEATURES)

    validity = BinaryModel(report_cols, seed=seed, num_threads=threads).fit(
        r_tr.X, r_tr.labels["valid"], r_cal.X, r_cal.labels["valid"]
    )
    on_step("validity")

    def valid_only(d: Labelled) -> Labelled:
        return d.take(d.labels["severity"] >= 0)

    s_tr, s_cal, s_te = valid_only(r_tr), valid_only(r_cal), valid_only(r_te)
    severity = MulticlassModel(report_cols, list(V.SEVERITIES), seed=seed, num_threads=threads).fit(
        s_tr.X, s_tr.labels["severity"], s_cal.X, s_cal.labels["severity"]
    )
    on_step("severity")

    fraud_report = BinaryModel(report_cols, seed=seed, num_threads=threads).fit(
        r_tr.X, r_tr.labels["fraud"], r_cal.X, r_cal.labels["fraud"]
    )
    fraud_order = BinaryModel(list(ORDER_FEATURES), seed=seed, num_threads=threads).fit(
        o_tr.X, o_tr.labels["fraud"], o_cal.X, o_cal.labels["fraud"]
    )
    on_step("fraud")

    p_valid = validity.predict_proba(r_te.X)
    p_fraud_r = fraud_report.predict_proba(r_te.X)
    p_fraud_o = fraud_order.predict_proba(o_te.X)
    metrics = {
        **{f"validity_{k}": v for k, v in binary_metrics(r_te.labels["valid"], p_valid).items()},
        **{f"severity_{k}": v for k, v in multiclass_metrics(s_te.labels["severity"], severity.predict_proba(s_te.X)).items()},
        **{f"fraud_report_{k}": v for k, v in binary_metrics(r_te.labels["fraud"], p_fraud_r).items()},
        **{f"fraud_order_{k}": v for k, v in binary_metrics(o_te.labels["fraud"], p_fraud_o).items()},
        "baseline_tree_validity_roc_auc": raw_field_tree_auc(r_tr, r_te),
    }

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="train") as run:
        mlflow.log_params({
            "seed": seed, "num_threads": threads, "split": "0.7/0.1/0.2 by time",
            "n_estimators_binary": validity.n_estimators, "n_estimators_severity": severity.n_estimators,
            **{f"lgbm_{k}": v for k, v in validity.params.items()},
        })
        mlflow.set_tags({
            "data_fingerprint": data_fingerprint(tables),
            "train_window": _window(r_tr.times), "calibration_window": _window(r_cal.times),
            "validation_window": _window(r_te.times),
        })
        mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        mlflow.log_dict({"report": REPORT_FEATURES, "order": ORDER_FEATURES}, "features.json")
        _log_plots(r_te, o_te, p_valid, p_fraud_r, p_fraud_o, validity, severity, fraud_report, fraud_order)
        on_step("plots")
        versions = {
            S.SEVERITY_MODEL: registry.log_and_register(
                SeverityBundle(validity, severity), S.SEVERITY_MODEL, "severity", r_te.X.head(3)),
            S.FRAUD_MODEL: registry.log_and_register(
                FraudBundle(fraud_report, fraud_order), S.FRAUD_MODEL, "fraud", o_te.X.head(3)),
        }
        for name, version in versions.items():
            registry.set_alias(name, alias, version)
        mlflow.set_tag("registered", ", ".join(f"{n} v{v} @{alias}" for n, v in versions.items()))
        on_step("register")
    rows = {"reports_train": len(r_tr.ids), "reports_validation": len(r_te.ids),
            "orders_train": len(o_tr.ids), "orders_validation": len(o_te.ids)}
    return TrainResult(run_id=run.info.run_id, versions=versions, metrics=metrics, rows=rows)


def _window(times: np.ndarray) -> str:
    if len(times) == 0:
        return "empty"
    lo, hi = pd.to_datetime([times.min(), times.max()], unit="s", utc=True)
    return f"{lo:%Y-%m-%d} .. {hi:%Y-%m-%d}"


def _log_plots(r_te, o_te, p_valid, p_fraud_r, p_fraud_o, validity, severity, fraud_report, fraud_order) -> None:
    curves = {
        "validity": (r_te.labels["valid"], p_valid),
        "fraud (reports)": (r_te.labels["fraud"], p_fraud_r),
        "fraud (orders)": (o_te.labels["fraud"], p_fraud_o),
    }
    figures = {
        "plots/precision_recall.png": plots.precision_recall(curves),
        "plots/calibration.png": plots.calibration(curves),
    }
    for name, model in (("validity", validity), ("severity", severity), ("fraud_report", fraud_report),
                        ("fraud_order", fraud_order)):
        gains = model.booster_.feature_importance(importance_type="gain")
        figures[f"plots/importance_{name}.png"] = plots.importance(model.features, gains, f"{name}: top features")
    for path, fig in figures.items():
        mlflow.log_figure(fig, path)
        plots.plt.close(fig)
