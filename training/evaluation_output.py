"""What an evaluation leaves behind: evaluation.json, plots, a summary table, an MLflow run.

Kept apart from training.evaluation so the figures stay pure data and the files, the figures'
pictures and the tracking server are touched in one place.
"""
from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training import plots
from training.baselines import ORACLE
from training.evaluation import Evaluation, across_folds, flatten
from training.window_scoring import LOGISTIC, MODEL

# The fraud tasks as evaluation.json names them, with their curves' names in Evaluation.curves.
FRAUD_CURVES = {"fraud_reports": "fraud (reports)", "fraud_orders": "fraud (orders)"}

SUMMARY_METRICS: dict[str, tuple[str, ...]] = {
    "fraud_reports": ("roc_auc", "average_precision", "precision_at_k", "recall_at_k", "card_precision_at_k",
                      "brier", "ece", "share_of_oracle_average_precision"),
    "fraud_orders": ("roc_auc", "average_precision", "precision_at_k", "recall_at_k", "card_precision_at_k",
                     "brier", "ece", "share_of_oracle_average_precision"),
    "validity": ("roc_auc", "average_precision", "brier", "ece", "share_of_oracle_average_precision"),
    "severity": ("macro_f1", "quadratic_kappa", "log_loss", "top_class_ece"),
}


def summary_table(report: dict) -> pd.DataFrame:
    """One row per task x ranker with that task's headline metrics (blank where a metric does not apply)."""
    rows = []
    for task, metrics in SUMMARY_METRICS.items():
        for ranker, values in report.get(task, {}).get("rankers", {}).items():
            rows.append({"task": task, "ranker": ranker, **{m: values.get(m) for m in metrics}})
    return pd.DataFrame(rows)


def queue_table(report: dict) -> pd.DataFrame:
    return pd.DataFrame(report.get("queue", {}).get("urgent", []))


def figures(ev: Evaluation) -> dict[str, "plots.plt.Figure"]:
    """Precision-recall and calibration per task (models and baselines), and the queue replay."""
    out = {}
    for task, curves in ev.curves.items():
        slug = task.replace(" ", "_").replace("(", "").replace(")", "")
        out[f"plots/{slug}_precision_recall.png"] = plots.precision_recall(
            curves, f"{task}: precision-recall on the test window")
        calibrated = {n: c for n, c in curves.items() if n in (MODEL, LOGISTIC, ORACLE)}
        out[f"plots/{slug}_calibration.png"] = plots.calibration(calibrated, f"{task}: calibration on the test window")
    if ev.replays is not None:
        out["plots/queue_replay.png"] = plots.queue_replay(ev.replays)
    return out


def fold_figures(reports: Sequence[dict]) -> dict[str, "plots.plt.Figure"]:
    out = {}
    for task in ("fraud_reports", "fraud_orders", "validity"):
        per = {}
        for r in reports:
            for ranker, values in r.get(task, {}).get("rankers", {}).items():
                per.setdefault(ranker, []).append(values["average_precision"])
        if per:
            out[f"plots/folds_{task}_average_precision.png"] = plots.across_folds(per, f"{task} average precision")
    return out


def scores_table(ev: Evaluation) -> pd.DataFrame:
    """One row per test row each fraud task ranked: task, id, account, day, label and every ranker's score
    (a column per ranker; blank where a ranker does not rank that task, e.g. the rules for orders).

    The rows and scores are exactly the ones behind the fraud figures (after any exclusion), so a
    reader can recompute every figure, or try another k, from the file."""
    parts = []
    for task, curve in FRAUD_CURVES.items():
        if task not in ev.ranked:
            continue
        curves = ev.curves[curve]
        part = ev.ranked[task].copy()
        part.insert(0, "task", task)
        part["label"] = next(iter(curves.values()))[0].astype(int)
        for ranker, (_, scores) in curves.items():
            part[ranker] = np.asarray(scores, float)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["task", "id", "account", "day", "label"])
    return pd.concat(parts, ignore_index=True, sort=False)


def write_scores(table: pd.DataFrame, path: Path) -> Path:
    """The scores table as Parquet when the name ends .parquet, else as CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)
    return path


def _clean(value):
    """NaN and infinities as null: evaluation.json must be valid JSON for any reader."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def document(evaluations: Sequence[Evaluation], data_fingerprint: str) -> dict:
    """evaluation.json's content: the last (most recent) fold in full, every fold, and their spread."""
    reports = [ev.report for ev in evaluations]
    doc = {"data_fingerprint": data_fingerprint, **reports[-1]}
    if len(reports) > 1:
        doc["folds"] = reports
        doc["across_folds"] = across_folds(reports)
    return _clean(doc)


def write(evaluations: Sequence[Evaluation], out_dir: Path, data_fingerprint: str) -> dict[str, Path]:
    """Write evaluation.json and every plot under out_dir; returns what was written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    path = out_dir / "evaluation.json"
    path.write_text(json.dumps(document(evaluations, data_fingerprint), indent=2), encoding="utf-8")
    written["evaluation.json"] = path
    figs = figures(evaluations[-1])
    if len(evaluations) > 1:
        figs.update(fold_figures([ev.report for ev in evaluations]))
    for name, fig in figs.items():
        target = out_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(target, dpi=110)
        plots.plt.close(fig)
        written[name] = target
    return written


def log_to_mlflow(evaluations: Sequence[Evaluation], written: dict[str, Path], data_fingerprint: str) -> None:
    """Inside an active run: windows, fingerprint, every scalar figure (fold means when folded), the files."""
    import mlflow

    last = evaluations[-1]
    mlflow.set_tags({"data_fingerprint": data_fingerprint, **{f"window.{k}": v for k, v in last.windows.as_dict().items()}})
    mlflow.log_params({"folds": len(evaluations), **{k: v for k, v in last.windows.as_dict().items()},
                       **_protocol_params(last.report.get("protocol", {}))})
    if len(evaluations) > 1:
        metrics = {f"{k}.mean": v["mean"] for k, v in across_folds([e.report for e in evaluations]).items()}
        metrics |= {f"{k}.std": v["std"] for k, v in across_folds([e.report for e in evaluations]).items()}
    else:
        metrics = flatten(last.report)
    mlflow.log_metrics({_metric_name(k): v for k, v in metrics.items()})
    for name, path in written.items():
        mlflow.log_artifact(str(path), artifact_path=str(Path(name).parent) if "/" in name else None)


def _protocol_params(protocol: dict) -> dict:
    """The protocol's figures and switches as MLflow parameters (its sentences stay in evaluation.json)."""
    flat = {f"protocol.{k}": v for k, v in protocol.items() if not isinstance(v, (str, dict, list))}
    flat |= {f"protocol.review_capacity.{k}": v for k, v in protocol.get("review_capacity", {}).items()}
    return flat


def _metric_name(key: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces."""
    return key.replace("@", "_at_")
