"""Train, evaluate and register both models: the `docket train` stage.

Training is an evaluation whose models are kept: fit on the training window (labels as known
when it ends, the latest rows calibrating), measure the models and every baseline on the
held-out test window (training.evaluation), log everything to MLflow with a model card, and
register `docket-severity` and `docket-fraud` under an alias, by default `challenger`; `docket
promote` decides whether they become `champion`. The very first models become champion too,
since there is nothing to compare them with and a service needs something to serve.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd

from config import settings as S
from features.build import ORDER_FEATURES, REPORT_FEATURES
from policy.queue import QueuePolicy
from training import evaluation_output, model_card, plots, registry
from training.evaluation import Evaluation, Options, evaluate, flatten
from training.evaluation_data import prepare
from training.registered_models import FraudBundle, SeverityBundle
from training.windows import resolve_windows

TRAIN_STEPS = ("features", "report models", "order model", "log", "register")
EXPERIMENT = "docket"
CHALLENGER = "challenger"


class CannotTrain(ValueError):
    """The data cannot give both registered models (a table is missing or has no labels)."""


@dataclass
class TrainResult:
    run_id: str
    versions: dict[str, str]
    metrics: dict[str, float]  # flattened figures: "task.ranker.metric"
    rows: dict[str, int] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    evaluation: Evaluation | None = None


def data_fingerprint(tables: dict[str, pd.DataFrame]) -> str:
    """A content hash of the raw tables, so a run says exactly which data it saw."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        digest.update(name.encode())
        digest.update(pd.util.hash_pandas_object(tables[name], index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def train(
    tables: dict[str, pd.DataFrame],
    settings: S.Settings,
    alias: str = CHALLENGER,
    on_step: Callable[[str], None] = lambda step: None,
    rules: QueuePolicy | None = None,
    **windows,
) -> TrainResult:
    """Fit, evaluate, log and register; `rules` (serving's queue policy) adds the rules baseline and the
    queue replay; `windows` are resolve_windows' keywords (default: the last 20% held out)."""
    seed, threads = settings.seed, max(settings.num_threads, 2)
    prep = prepare(tables)
    on_step("features")
    w = resolve_windows(tables, **windows)
    examples = {task: _example(rows.X) for task, rows in (("reports", prep.reports), ("orders", prep.orders))
                if rows is not None}
    ev = evaluate(prep, w, rules, Options(seed=seed, threads=threads), on_step=on_step, keep_rows=False)
    if ev.report_models is None or ev.order_model is None:
        reasons = "; ".join(f"{k}: {v}" for k, v in ev.report["skipped"].items())
        raise CannotTrain(f"training registers the report and order models together and cannot here ({reasons}); "
                          "`docket evaluate` works on partial data")
    fingerprint = data_fingerprint(tables)
    metrics = flatten(ev.report)

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="train") as run, tempfile.TemporaryDirectory() as tmp:
        m = ev.report_models
        mlflow.log_params({
            "seed": seed, "num_threads": threads, "calibration": "latest 12.5% of the training window",
            "n_estimators_binary": m.validity.n_estimators, "n_estimators_severity": m.severity.n_estimators,
            **{f"lgbm_{k}": v for k, v in m.validity.params.items()},
            **{f"search_{name}": json.dumps(model.search["chosen"] if model.search else None)
               for name, model in (("fraud_reports", m.fraud), ("fraud_orders", ev.order_model))},
            "refit_fraud_orders": ev.order_model.refit, "refit_fraud_reports": m.fraud.refit,
        })
        written = evaluation_output.write([ev], Path(tmp), fingerprint)
        for name, fig in _importance_figures(ev).items():
            fig.savefig(Path(tmp) / name, dpi=110)
            plots.plt.close(fig)
            written[name] = Path(tmp) / name
        evaluation_output.log_to_mlflow([ev], written, fingerprint)
        mlflow.log_dict({"report": REPORT_FEATURES, "order": ORDER_FEATURES}, "features.json")
        on_step("log")
        versions = {
            S.SEVERITY_MODEL: registry.log_and_register(
                SeverityBundle(m.validity, m.severity), S.SEVERITY_MODEL, "severity", examples["reports"]),
            S.FRAUD_MODEL: registry.log_and_register(
                FraudBundle(m.fraud, ev.order_model), S.FRAUD_MODEL, "fraud", examples["orders"]),
        }
        aliases = [alias]
        if not all(registry.has_alias(name, S.CHAMPION) for name in versions):
            aliases.append(S.CHAMPION)  # the first models: nothing to compare with, and a service needs one
        for name, version in versions.items():
            for a in aliases:
                registry.set_alias(name, a, version)
        mlflow.set_tag("registered", ", ".join(f"{n} v{v}" for n, v in versions.items()) + f" @{', @'.join(aliases)}")
        mlflow.log_text(model_card.render(ev, versions, fingerprint, run.info.run_id), "model_card.md")
        on_step("register")
    return TrainResult(run_id=run.info.run_id, versions=versions, metrics=metrics, rows=dict(ev.report["rows"]),
                       aliases=tuple(aliases), evaluation=ev)


def _example(X: pd.DataFrame) -> pd.DataFrame:
    """Three rows, copied: a view would keep the whole feature frame alive after evaluate releases it."""
    return X.head(3).reset_index(drop=True).copy(deep=True)


def _importance_figures(ev: Evaluation) -> dict[str, plots.plt.Figure]:
    m = ev.report_models
    figures = {}
    for name, model in (("validity", m.validity), ("severity", m.severity), ("fraud_report", m.fraud),
                        ("fraud_order", ev.order_model)):
        gains = model.booster_.feature_importance(importance_type="gain")
        figures[f"plots/importance_{name}.png"] = plots.importance(model.features, gains, f"{name}: top features")
    return figures
