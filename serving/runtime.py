"""What the service scores with: the data source's history and the champion models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features import settings as S
from features.build import History
from serving.requests import parse_reports
from training import registry
from training.scoring import Scorer, rank_order


@dataclass
class Runtime:
    settings: S.Settings
    history: History
    scorer: Scorer

    def score(self, payload: Any) -> list[dict]:
        reports = parse_reports(payload, self.history, self.settings.max_batch)
        return self.scorer.score(reports, self.history)

    @staticmethod
    def rank(scored: list[dict]) -> list[dict]:
        return rank_order(scored)


def load_scorer(settings: S.Settings) -> Scorer:
    """The champion models from the registry (raises ModelNotFound if there are none)."""
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    scorer = Scorer(severity=registry.load(S.SEVERITY_MODEL, S.CHAMPION), fraud=registry.load(S.FRAUD_MODEL, S.CHAMPION))
    for loaded in (scorer.severity, scorer.fraud):
        for model in vars(loaded.bundle).values():
            model.num_threads = settings.num_threads  # one request's rows: threads only add overhead
    return scorer


def load_runtime(settings: S.Settings | None = None) -> Runtime:
    """Read the data source and load the champion models (raises if either is missing)."""
    from features.io import load_tables

    settings = settings or S.Settings.from_env()
    history = History.from_tables(load_tables(settings.data_dir, require=["accounts"]))
    return Runtime(settings=settings, history=history, scorer=load_scorer(settings))
