"""Docket's configuration: one typed object, read from the environment, and the only place that reads it.

Every location has an embedded default that works on a fresh clone (files under
the working directory) and an environment variable that overrides it. Secrets
never live here; they only ever come from the environment. What a policy person
may change (ladders, goals, weights, thresholds) is not here but in the policy
file, whose path is (policy.file).
"""
from __future__ import annotations

import os
import sys
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
    policy_file: Path | None = None  # None: the policy shipped with Docket (policy/policy.yaml)
    test_postgres_url: str | None = None  # a PostgreSQL that `make test` and `make bench` may use besides SQLite
    # Per API key and per worker (serving/api/rate_limits.py); 0: no limit. The benchmarks peak near 1,400
    # requests per second on one key over 2 workers, so the defaults leave a wide margin.
    rate_limit_per_second: float = 5000.0
    rate_limit_burst: float = 10000.0

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
            policy_file=Path(env["DOCKET_POLICY_FILE"]).resolve() if env.get("DOCKET_POLICY_FILE") else None,
            test_postgres_url=env.get("DOCKET_TEST_POSTGRES_URL") or None,
            rate_limit_per_second=float(env.get("DOCKET_RATE_LIMIT", "5000")),
            rate_limit_burst=float(env.get("DOCKET_RATE_BURST", "10000")),
        )


# Names of the registered models and the alias the service loads.
SEVERITY_MODEL = "docket-severity"
FRAUD_MODEL = "docket-fraud"
CHAMPION = "champion"


# ---------------------------------------------------------------------------
# The process environment itself, for the few places that must pass it on or set a library's knob.

def process_environment() -> dict[str, str]:
    """A copy of this process's environment, to start a child process with (plus its own overrides)."""
    return dict(os.environ)


def original_environment(name: str) -> str | None:
    """`name` as this process's environment had it before training was imported (see passive_openmp_waits).

    Normally training is not imported yet, so os.environ is still the original. If it was, the environment the
    process started with is read from /proc/self/environ (Linux); failing that, the current value is all there is.
    """
    if "training.models" not in sys.modules:
        return os.environ.get(name)
    try:
        pairs = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return os.environ.get(name)
    prefix = name.encode() + b"="
    return next((p[len(prefix):].decode(errors="replace") for p in pairs if p.startswith(prefix)), None)


def passive_openmp_waits() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the environment sets it: LightGBM's OpenMP threads then sleep while they wait.

    LightGBM's OpenMP threads spin between rounds by default. On few cores with small trees a round is short, so
    on a shared or busy machine (more runnable threads than cores) a waiting thread holds a core the working one
    needs: profiled on 2 cores with other work running, 2 threads fitted a 60k-row model in 35-65 s against 5 s
    with 1, nearly all of it in libgomp's wait loop. It must be set before OpenMP starts, i.e. before lightgbm is
    imported (training.models calls it first); an explicit OMP_WAIT_POLICY in the environment wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
