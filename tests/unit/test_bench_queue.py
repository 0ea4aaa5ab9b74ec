"""The queue benchmark runs end to end at tiny size (re-rank and intake through the real service, SQLite)."""
from __future__ import annotations

import pytest

from benchmarks import queue_bench
from benchmarks.config import BenchConfig


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    config = BenchConfig.make(tiny=True, work_dir=tmp_path_factory.mktemp("queue-bench"), postgres_url=None)
    return queue_bench.run(config)


def by_case(rows: list[dict]) -> dict[str, dict]:
    return {r["case"]: r for r in rows}


def test_queue_bench_rerank_rows_have_their_figures(rows):
    cases = by_case(rows)
    rerank = cases["rerank"]
    assert rerank["store"] == "sqlite" and rerank["n"] == queue_bench.RERANK_CASES_TINY
    assert rerank["cases_in_store"] > rerank["n"]  # closed cases are in the store too, and not ranked
    for key in ("cold_ms", "warm_ms", "cases_per_s", "meets_target", "load_avg"):
        assert key in rerank
    assert cases["rank_cases"]["warm_ms"] > 0 and cases["queue_page_50"]["warm_ms"] > 0


def test_queue_bench_intake_stores_every_report_once_at_both_batch_sizes(rows):
    intake = [r for r in rows if r["case"].startswith("intake_batch_")]
    assert sorted(r["batch"] for r in intake) == [1, 100]
    for r in intake:
        assert r["errors"] == 0, r["first_error"]
        assert r["accepted"] == r["n"]
        assert r["stored_once"] and r["duplicates"] == 0
        for key in ("reports_per_s", "p50_ms", "p99_ms", "requests", "clients"):
            assert key in r
        assert r["server_cpu_ms_per_request"] > 0  # the intake server's own CPU, as the online suite records it
    assert sum(r["n"] for r in intake) == queue_bench.INTAKE_REPORTS_TINY
    assert by_case(rows)["http_queue_50"]["p50_ms"] > 0


def test_queue_bench_get_queue_under_load_at_both_id_lengths(rows):
    load = {r["case"]: r for r in rows if r["case"].startswith("http_queue_load")}
    assert set(load) == {"http_queue_load", "http_queue_load_id128"}
    for r in load.values():
        assert r["errors"] == 0, r["first_error"]
        assert r["clients"] == 8 and r["workers"] == 1 and r["requests"] >= 8  # the load generator's own count
        assert r["p99_ms"] >= r["p50_ms"] > 0 and r["server_cpu_ms_per_request"] > 0 and "load_avg" in r
        assert r["client_cpu_ms_per_request"] > 0 and r["rss_mb"] > 100  # a worker with models loaded
        assert "target" in r and r["pass"] is None  # tiny: no target applies
    assert load["http_queue_load_id128"]["id_length"] == 128
