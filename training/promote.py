"""The `docket promote` stage: measure champion and challenger on the same held-out window, decide
(training.promotion.decide), log the decision to MLflow, and move `champion` if it says so.

Both models move together: docket-severity and docket-fraud versions trained in one run form the
pair the service scores with, so a promotion never mixes runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient

from features import settings as S
from training import registry
from training.evaluation import QueueRules
from training.evaluation_data import prepare
from training.promotion import Decision, Tolerances, decide, guarded_figures, holdout_windows
from training.train import CHALLENGER, EXPERIMENT, data_fingerprint
from training.windows import WindowError, observed_label_delay_days

MODELS = (S.SEVERITY_MODEL, S.FRAUD_MODEL)
PROMOTE_STEPS = ("load models", "features", "champion", "challenger", "log")


@dataclass
class Promotion:
    decision: Decision
    champion: dict[str, str]  # versions before
    challenger: dict[str, str]
    figures: dict[str, dict[str, float]]  # "champion" / "challenger" -> figure -> value
    window_start: pd.Timestamp | None
    run_id: str


def _versions(alias: str) -> dict[str, str] | None:
    """The versions both models' `alias` points at, or None if either has no such version."""
    try:
        return {name: registry.version_of(name, alias) for name in MODELS}
    except registry.ModelNotFound:
        return None


def _test_start(name: str, version: str) -> pd.Timestamp | None:
    """Where the run that trained this version started its held-out window (None for older runs)."""
    client = MlflowClient()
    run_id = client.get_model_version(name, version).run_id
    value = client.get_run(run_id).data.tags.get("window.test_start") if run_id else None
    return pd.Timestamp(value) if value else None


def promote(tables: dict[str, pd.DataFrame], settings: S.Settings, rules: QueueRules,
            tolerances: Tolerances = Tolerances(), force: bool = False,
            on_step=lambda step: None) -> Promotion:
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    challenger = _versions(CHALLENGER)
    if challenger is None:
        raise registry.ModelNotFound("no challenger registered: run `docket train` first")
    champion = _versions(S.CHAMPION)
    figures: dict[str, dict[str, float]] = {}
    start = None
    if champion is None:
        decision = Decision(True, force, "no champion yet: the challenger becomes champion", ())
    elif champion == challenger:
        decision = Decision(False, force, "the challenger is already the champion; nothing to do", ())
    else:
        starts = [s for s in (_test_start(n, v) for vs in (champion, challenger) for n, v in vs.items()) if s is not None]
        if not starts:
            raise WindowError("neither run recorded its held-out window; retrain the challenger")
        start = max(starts)
        pairs = {role: (registry.load_version(S.SEVERITY_MODEL, vs[S.SEVERITY_MODEL]).bundle,
                        registry.load_version(S.FRAUD_MODEL, vs[S.FRAUD_MODEL]).bundle)
                 for role, vs in (("champion", champion), ("challenger", challenger))}
        on_step("load models")
        prep = prepare(tables)
        end = pd.Timestamp(prep.data_end, unit="s", tz="UTC")
        if start >= end:
            raise WindowError(f"the data ends ({end:%Y-%m-%d}) before the held-out window starts ({start:%Y-%m-%d}); "
                              "promote on data that reaches past both models' training")
        windows = holdout_windows(start, end, observed_label_delay_days(tables))
        on_step("features")
        for role, (sev, fraud) in pairs.items():
            figures[role] = guarded_figures(sev, fraud, prep, windows, rules)
            on_step(role)
        decision = decide(figures["champion"], figures["challenger"], tolerances, force)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="promote") as run:
        mlflow.log_params({f"tolerance.{k}": v for k, v in vars(tolerances).items()}
                          | {"forced": force, "data_fingerprint": data_fingerprint(tables),
                             "window_start": start.isoformat() if start is not None else "none"})
        mlflow.set_tags({"decision": "promoted" if decision.promote else "kept champion",
                         "forced": str(decision.forced).lower(), "reason": decision.reason[:5000],
                         **{f"champion.{n}": v for n, v in (champion or {}).items()},
                         **{f"challenger.{n}": v for n, v in challenger.items()}})
        mlflow.log_metrics({f"{role}.{k}": v for role, fig in figures.items() for k, v in fig.items()})
        mlflow.log_dict(decision.as_dict() | {"champion": champion, "challenger": challenger}, "decision.json")
        if decision.promote and champion != challenger:
            for name, version in challenger.items():
                registry.set_alias(name, S.CHAMPION, version)
        on_step("log")
    return Promotion(decision, champion or {}, challenger, figures, start, run.info.run_id)
