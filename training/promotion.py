"""Promotion: challenger against champion on the same recent held-out window, the rule, and the `docket promote`
stage that applies it.

Both registered pairs (docket-severity + docket-fraud) score the same reports and orders, from a
window neither of them trained on: it starts at the later of the two training runs' test
windows. The guarded figures are the ones a worse model would hurt people with: average
precision (fraud per report and per order, validity), calibration (expected calibration error of
the same three), and the queue's share of valid cases that miss their response-time goal when a
team with capacity equal to the arrivals replays the window. `decide` is pure: the challenger is
promoted only if no guarded figure is worse than the champion's by more than its tolerance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient

from config import settings as S
from policy.queue import QueuePolicy
from training import registry
from training import window_scoring as R
from training.evaluation import binary_figures, queue_replay
from training.evaluation_data import Prepared, order_split, prepare, report_split
from training.registered_models import FraudBundle, SeverityBundle
from training.train import CHALLENGER, EXPERIMENT, data_fingerprint
from training.windows import WindowError, Windows, observed_label_delay_days

HIGHER, LOWER = "higher is better", "lower is better"


@dataclass(frozen=True)
class Tolerances:
    """How much worse than the champion a challenger may be on each kind of guarded figure (absolute)."""

    average_precision: float = 0.01
    calibration_ece: float = 0.01
    missed_goal_share: float = 0.01


GUARDED: dict[str, tuple[str, str]] = {  # figure -> (direction, tolerance field)
    "fraud_reports.average_precision": (HIGHER, "average_precision"),
    "fraud_orders.average_precision": (HIGHER, "average_precision"),
    "validity.average_precision": (HIGHER, "average_precision"),
    "fraud_reports.ece": (LOWER, "calibration_ece"),
    "fraud_orders.ece": (LOWER, "calibration_ece"),
    "validity.ece": (LOWER, "calibration_ece"),
    "queue.missed_goal_share": (LOWER, "missed_goal_share"),
}


@dataclass(frozen=True)
class Check:
    figure: str
    champion: float
    challenger: float
    tolerance: float
    direction: str

    @property
    def worse_by(self) -> float:
        """How much worse the challenger is (negative when better)."""
        gap = self.champion - self.challenger
        return gap if self.direction == HIGHER else -gap

    @property
    def passed(self) -> bool:
        return self.worse_by <= self.tolerance + 1e-12


@dataclass(frozen=True)
class Decision:
    promote: bool
    forced: bool
    reason: str
    checks: tuple[Check, ...]

    def as_dict(self) -> dict:
        return {"promote": self.promote, "forced": self.forced, "reason": self.reason,
                "checks": [{**asdict(c), "worse_by": c.worse_by, "passed": c.passed} for c in self.checks]}


def decide(champion: dict[str, float], challenger: dict[str, float], tolerances: Tolerances,
           force: bool = False) -> Decision:
    """Promote unless a guarded figure got worse beyond its tolerance; `force` promotes anyway, and says so."""
    checks = tuple(
        Check(name, champion[name], challenger[name], getattr(tolerances, field), direction)
        for name, (direction, field) in GUARDED.items() if name in champion and name in challenger
    )
    if not checks:
        raise ValueError("no guarded figure could be measured for both models on this window")
    failed = [c for c in checks if not c.passed]
    if not failed:
        return Decision(True, force, "no guarded figure is worse beyond its tolerance", checks)
    worst = "; ".join(f"{c.figure} {c.champion:.4f} -> {c.challenger:.4f} (worse by {c.worse_by:.4f}, "
                      f"tolerance {c.tolerance:.4f})" for c in failed)
    if force:
        return Decision(True, True, f"forced despite: {worst}", checks)
    return Decision(False, False, f"challenger worse beyond tolerance: {worst}", checks)


def guarded_figures(severity: SeverityBundle, fraud: FraudBundle, prep: Prepared, windows: Windows,
                    rules: QueuePolicy) -> dict[str, float]:
    """The guarded figures of one registered pair on the window's test part (nothing is refitted)."""
    out: dict[str, float] = {}
    if prep.reports is not None:
        test = report_split(prep.reports, windows).test
        if len(test):
            models = R.ReportModels(severity.validity, severity.severity, fraud.report)
            p_valid, sev, p_fraud = (models.validity.predict_proba(test.X), models.severity.predict_proba(test.X),
                                     models.fraud.predict_proba(test.X))
            done = test.labels["resolved"]
            for task, y, p in (("fraud_reports", test.labels["fraud"][done], p_fraud[done]),
                               ("validity", test.labels["valid"][done], p_valid[done])):
                m = binary_figures(y, p, True)
                out[f"{task}.average_precision"], out[f"{task}.ece"] = m["average_precision"], m["ece"]
            scores = {R.MODEL: R.from_probabilities(p_valid, sev, p_fraud)}
            queue, _ = queue_replay(test, scores, rules, windows, (1.0,))
            out["queue.missed_goal_share"] = queue["urgent"][0]["goal_missed_share"]
    if prep.orders is not None:
        test = order_split(prep.orders, windows, prep.data_end).test
        if len(test) and test.labels["fraud"].any():
            m = binary_figures(test.labels["fraud"], fraud.order.predict_proba(test.X), True)
            out["fraud_orders.average_precision"], out["fraud_orders.ece"] = m["average_precision"], m["ece"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def holdout_windows(first_untrained: pd.Timestamp, data_end: pd.Timestamp, label_delay_days: int) -> Windows:
    """A window whose test part starts where neither model has trained (the training part is unused)."""
    return Windows(first_untrained - pd.Timedelta(days=1), first_untrained, first_untrained,
                   data_end + pd.Timedelta(microseconds=1), label_delay_days)


# The `docket promote` stage: measure champion and challenger on the same held-out window, decide, log the
# decision to MLflow, and move `champion` if it says so.
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


def promote(tables: dict[str, pd.DataFrame], settings: S.Settings, rules: QueuePolicy,
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
