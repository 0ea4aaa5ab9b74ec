"""What the service holds once started: the data source's history and the champion models."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from features import settings as S
from features.build import History
from features.io import load_tables
from training import registry
from training.scoring import Scorer, rank_order
from serving.requests import parse_reports


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


def load_runtime(settings: S.Settings | None = None) -> Runtime:
    """Read the data source and load the champion models (raises if either is missing)."""
    import mlflow

    settings = settings or S.Settings.from_env()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    tables = load_tables(settings.data_dir, require=["accounts"])
    history = History.from_tables(tables)
    scorer = Scorer(
        severity=registry.load(S.SEVERITY_MODEL, S.CHAMPION),
        fraud=registry.load(S.FRAUD_MODEL, S.CHAMPION),
    )
    for loaded in (scorer.severity, scorer.fraud):
        for model in vars(loaded.bundle).values():
            model.num_threads = settings.num_threads  # one request's rows: threads only add overhead
    return Runtime(settings=settings, history=history, scorer=scorer)
