"""What every benchmark suite takes: one small, typed config, built by `benchmarks.run` from the CLI."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from config.settings import Settings

FULL_SIZES: tuple[int, ...] = (100_000, 1_000_000)
TINY_SIZES: tuple[int, ...] = (2_000, 4_000)


@dataclass(frozen=True)
class BenchConfig:
    """Settings shared by the offline, online, queue, live and console suites.

    sizes: report counts for the offline suite (smallest first; growth is measured from the first to the last).
    tiny: a seconds-long run that only proves the benchmark code works (the test suite uses it); no targets apply.
    work_dir: scratch folder for simulated data, models and stores; never ./data or ./mlflow.db.
    seed: simulation seed.
    postgres_url: a Postgres to benchmark the store against (DOCKET_TEST_POSTGRES_URL), or None for SQLite only.
    requests, duration_s: bounds for the online suite (stop at whichever comes first per case).
    concurrency: client concurrency levels for the online suite.
    scale_reports: reports in the store the live suite starts a worker on (full 1M; tiny 20,000).
    soak_s: how long the soak suite's mixed traffic runs (issue 15: 30 minutes; tiny: 20 s).
    """

    sizes: tuple[int, ...] = FULL_SIZES
    tiny: bool = False
    work_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()) / "docket-bench")
    seed: int = 7
    postgres_url: str | None = field(default_factory=lambda: Settings.from_env().test_postgres_url)
    requests: int = 2_000
    duration_s: float = 30.0
    concurrency: tuple[int, ...] = (1, 8, 32)
    scale_reports: int = 1_000_000
    soak_s: float = 1_800.0

    @classmethod
    def make(cls, tiny: bool = False, **overrides) -> BenchConfig:
        """The full-size config, or the tiny one (small sizes, few requests, low concurrency)."""
        if tiny:
            base = dict(sizes=TINY_SIZES, tiny=True, requests=50, duration_s=5.0, concurrency=(1, 4),
                        scale_reports=20_000, soak_s=20.0)
            return cls(**{**base, **overrides})
        return cls(**overrides)
