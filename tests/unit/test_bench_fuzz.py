"""The fuzz benchmark runs end to end at tiny size (3 examples per operation and mode, the hostile corpus once,
SQLite) against a real service."""
from __future__ import annotations

from benchmarks import fuzz_bench, hostile
from benchmarks.config import BenchConfig
from benchmarks.run import SUITES


def test_fuzz_bench_sends_every_operation_and_the_hostile_corpus_and_reads_the_workers_memory(tmp_path):
    config = BenchConfig.make(tiny=True, work_dir=tmp_path, postgres_url=None)
    (row,) = fuzz_bench.run(config)
    assert row["failures"] == 0, row["first_failure"]
    assert row["schemathesis_requests"] >= 20 * 2 * 2  # 20+ operations, both modes, a few examples each
    assert row["hostile_requests"] == len(list(hostile.requests(oversize=False)))
    assert row["worker_rss_before_mb"] > 100 and row["worker_rss_after_mb"] > 100  # a worker with models loaded
    assert row["server_cpu_ms_per_request"] > 0 and "target" in row and row["pass"] is None
    assert SUITES["fuzz"] == "benchmarks.fuzz_bench"
