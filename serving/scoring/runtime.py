"""What the service scores with: the live history (serving.market.live_feed) and the champion models.

A Runtime's models never change once built. Picking up a new champion builds a new one
with both new models loaded and replaces the old in a single assignment
(`reload`), so a request holds one Runtime from start to finish and never sees
severity from one training and fraud from another. The history is the feed's current one,
taken once per scoring pass: every event committed before the pass is in it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from config import settings as S
from features.contract import REPORTS
from features.history import History
from serving.input_checks import (
    check_reports,
    cold_start,
    parse_feature_rows,
    records_columns,
)
from training import registry
from training.scoring import Scorer

MODELS = (S.SEVERITY_MODEL, S.FRAUD_MODEL)
LOAD_ATTEMPTS = 3


class AliasesUnsettled(RuntimeError):
    """The champion aliases kept moving while the models were loading."""


@dataclass(frozen=True)
class Runtime:
    settings: S.Settings
    histories: Callable[[], History]  # the current history (LiveFeed.current): reads the store's new events
    scorer: Scorer
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    latest: Callable[[], History] | None = None  # the history as last read, without asking the store (checks)

    @property
    def history(self) -> History:
        return self.histories()

    def check(self, payload: Any) -> list[dict]:
        """A request's reports, validated against the contract (RequestError); accounts and orders not seen yet
        are allowed (cold start, flagged in the result)."""
        return check_reports(payload, self.settings.max_batch, (self.latest or self.histories)())

    def score_checked(self, rows: list[dict]) -> list[dict]:
        """Score checked reports, possibly of several requests, on the history as it is now: one result per
        report, in order, each naming the fields that refer to what the history does not know yet."""
        history = self.history
        columns = records_columns(rows, REPORTS)
        results = self.scorer.score(columns, history)
        for result, unknown in zip(results, cold_start(columns, history)):
            result["cold_start"] = unknown
        return results

    def predict_fraud(self, rows: Any) -> dict:
        """The fraud model alone on feature rows (order features, or report features): what `mlflow models
        serve` of docket-fraud computes, for comparing serving overhead; no features built, no reasons."""
        fraud = self.scorer.fraud.bundle
        columns = rows.get("columns") if isinstance(rows, dict) else None
        needed = fraud.report.features if isinstance(columns, list) and "category" in columns else fraud.order.features
        X = parse_feature_rows(rows, needed, self.settings.max_batch)
        return {"fraud_risk": [round(float(p), 6) for p in fraud.predict(X)["fraud_risk"]],
                "model_versions": {S.FRAUD_MODEL: self.scorer.fraud.version}}


@dataclass(frozen=True)
class Reload:
    """The outcome of a reload: the runtime to serve with, and what it replaced."""
    runtime: Runtime
    previous: dict[str, str]
    changed: bool


def champion_versions(settings: S.Settings) -> dict[str, str]:
    """The version each model's champion alias points at now: two registry reads, no artifacts loaded.

    Raises ModelNotFound when either model has no champion.
    """
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    return {name: registry.version_of(name, S.CHAMPION) for name in MODELS}


def load_scorer(settings: S.Settings) -> Scorer:
    """Both champion models, as one consistent pair (raises ModelNotFound if there are none).

    The aliases are read first and the models loaded by version number; if an alias
    moved meanwhile (a promotion in progress), the pair is loaded again, so both
    models always come from the same reading of the registry.
    """
    versions = champion_versions(settings)
    for _ in range(LOAD_ATTEMPTS):
        scorer = Scorer(severity=registry.load_version(S.SEVERITY_MODEL, versions[S.SEVERITY_MODEL]),
                        fraud=registry.load_version(S.FRAUD_MODEL, versions[S.FRAUD_MODEL]))
        now = champion_versions(settings)
        if now == versions:
            break
        versions = now
    else:
        raise AliasesUnsettled(f"the champion aliases moved during each of {LOAD_ATTEMPTS} loads (last: {versions})")
    for loaded in (scorer.severity, scorer.fraud):
        for model in vars(loaded.bundle).values():
            model.num_threads = settings.num_threads  # one request's rows: threads only add overhead
    return scorer


def reload(current: Runtime) -> Reload:
    """A runtime with the models the champion aliases point at now; `current` itself if they have not moved.

    Raises (ModelNotFound when an alias points at nothing, or whatever loading
    raised) without touching `current`, so the caller keeps serving with it.
    """
    before = current.scorer.model_versions
    if champion_versions(current.settings) == before:
        return Reload(runtime=current, previous=before, changed=False)
    fresh = Runtime(current.settings, current.histories, load_scorer(current.settings), latest=current.latest)
    if fresh.scorer.model_versions == before:  # moved and moved back while loading
        return Reload(runtime=current, previous=before, changed=False)
    return Reload(runtime=fresh, previous=before, changed=True)


def load_runtime(settings: S.Settings | None = None) -> Runtime:
    """A data folder's history (fixed: nothing flows in) and the champion models (raises if either is missing):
    for scoring outside the service."""
    from features.io import load_tables

    settings = settings or S.Settings.from_env()
    history = History.from_tables(load_tables(settings.data_dir, require=["accounts"]))
    return Runtime(settings=settings, histories=lambda: history, scorer=load_scorer(settings))
