"""The soak benchmark runs end to end at tiny size (20 s of mixed traffic at 8 clients, SQLite)."""
from __future__ import annotations

from pathlib import Path

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
    # the fresh service over the soak's data is the yardstick for "flat": a worker with models loaded
    assert row["rss_fresh_same_data_mb"] > 100 and row["rss_end_mb"] > 100
    assert row["rss_beyond_data"] == pytest.approx(row["rss_end_mb"] / row["rss_fresh_same_data_mb"] - 1, abs=1e-3)
    assert row["reports_stored_end"] > row["reports_stored_start"]  # the series saw the reports the soak filed
    assert row["server_cpu_ms_per_request"] > 0
    assert "target" in row and row["pass"] is None  # tiny: no target applies
    assert SUITES["soak"] == "benchmarks.soak_bench"


def test_soak_writes_its_memory_series_and_plot(row):
    lines = Path(row["series_csv"]).read_text().splitlines()
    assert lines[0] == "service,seconds,rss_mb,reports_stored"
    services = {line.split(",")[0] for line in lines[1:]}
    assert services == {"soaked", "fresh"} and len(lines) - 1 >= row["rss_samples"] + 2
    assert Path(row["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
