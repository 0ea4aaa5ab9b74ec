"""Docket's configuration: one typed object, read from the environment.

Every location has an embedded default that works on a fresh clone (files under
the working directory) and an environment variable that overrides it. Secrets
never live here; they only ever come from the environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    mlflow_tracking_uri: str
    database_url: str
    max_batch: int
    num_threads: int
    seed: int
    reload_seconds: float = 30.0  # how often the service checks the champion aliases; 0: only on POST /admin/reload
    workers: int = 1  # BentoML worker processes; each loads the history and the models
    score_pass_rows: int = 256  # most reports /score and /rank score in one pass over concurrent requests
    trace_scoring: bool = False  # BentoML tracing spans for /score and /rank (see serving/service.py)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        return cls(
            data_dir=Path(env.get("DOCKET_DATA_DIR", "data")).resolve(),
            mlflow_tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{Path('mlflow.db').resolve()}"),
            database_url=env.get("DOCKET_DATABASE_URL", f"sqlite:///{Path('docket.db').resolve()}"),
            max_batch=int(env.get("DOCKET_MAX_BATCH", "1000")),
            num_threads=int(env.get("DOCKET_NUM_THREADS", "1")),
            seed=int(env.get("DOCKET_SEED", "7")),
            reload_seconds=float(env.get("DOCKET_RELOAD_SECONDS", "30")),
            workers=int(env.get("DOCKET_WORKERS", "1")),
            score_pass_rows=int(env.get("DOCKET_SCORE_PASS_ROWS", "256")),
            trace_scoring=env.get("DOCKET_TRACE_SCORING", "0").strip().lower() in ("1", "true", "yes"),
        )


# Names of the registered models and the alias the service loads.
SEVERITY_MODEL = "docket-severity"
FRAUD_MODEL = "docket-fraud"
CHAMPION = "champion"
