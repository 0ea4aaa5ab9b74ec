"""The soak benchmark runs end to end at tiny size (20 s of mixed traffic at 8 clients, SQLite)."""
from __future__ import annotations

import pytest

from benchmarks import soak_bench
from benchmarks.config import BenchConfig
from benchmarks.run import SUITES


@pytest.fixture(scope="module")
def row(tmp_path_factory) -> dict:
    config = BenchConfig.make(tiny=True, work_dir=tmp_path_factory.mktemp("soak-bench"), postgres_url=None)
    (only,) = soak_bench.run(config)
    return only


def test_soak_runs_every_kind_of_call_without_errors_and_stores_each_acknowledged_report_once(row):
    assert row["errors"] == 0, row["first_error"]
    assert all(row[f"{op}_calls"] > 0 for op in ("score", "intake", "queue", "claim_resolve")), row
    assert row["acknowledged"] > 0 and row["stored_once"] and row["missing"] == row["duplicates"] == 0
    assert row["clients"] == 8 and 19 <= row["duration_s"] < 60


def test_soak_samples_memory_and_states_its_target(row):
    assert row["rss_samples"] >= 3 and row["rss_first_third_mb"] > 0 and "rss_growth" in row
    assert "target" in row and row["pass"] is None  # tiny: no target applies
    assert SUITES["soak"] == "benchmarks.soak_bench"
