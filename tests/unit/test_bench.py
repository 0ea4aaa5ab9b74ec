"""The benchmark code runs: `docket bench --tiny` end to end, and the results it writes. No timings are asserted;
benchmarks are measured by `make bench`, never by the test suite."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import offline
from benchmarks.config import TINY_SIZES, BenchConfig
from benchmarks.run import markdown

DOCKET = str(Path(sys.executable).parent / "docket")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("bench")
    res = subprocess.run([DOCKET, "bench", "--tiny", "--suites", "offline", "--out", str(root / "out"),
                          "--work", str(root / "work")], capture_output=True, text=True, cwd=root, timeout=1800)
    return root, res


@pytest.mark.slow
def test_tiny_offline_bench_writes_a_row_per_step_and_size(tiny_run):
    root, res = tiny_run
    assert res.returncode == 0, res.stderr
    doc = json.loads((root / "out" / "results.json").read_text())
    rows = doc["results"]
    assert {(r["case"], r["size"]) for r in rows} == {(s, n) for s in offline.STEPS for n in TINY_SIZES}
    for r in rows:
        assert r["suite"] == "offline" and r["ok"], r
        assert r["wall_s"] > 0 and r["rows_per_s"] > 0 and r["peak_rss_mb"] > 0
        assert "pass" not in r  # tiny runs are not judged against the targets


@pytest.mark.slow
def test_tiny_offline_bench_computes_growth_on_the_largest_size(tiny_run):
    root, _ = tiny_run
    rows = json.loads((root / "out" / "results.json").read_text())["results"]
    large = [r for r in rows if r["size"] == max(TINY_SIZES)]
    for r in large:
        ratio = max(TINY_SIZES) / min(TINY_SIZES)
        assert r["growth_from"] == min(TINY_SIZES)
        assert r["time_growth"] == pytest.approx(r["time_ratio"] / ratio, abs=1e-3)
        assert r["rss_ratio"] > 0


@pytest.mark.slow
def test_tiny_bench_records_the_machine_and_writes_the_markdown_table(tiny_run):
    root, _ = tiny_run
    doc = json.loads((root / "out" / "results.json").read_text())
    m = doc["machine"]
    assert m["cores"] >= 1 and m["ram_gb"] > 0 and m["python"] and m["packages"]["lightgbm"]
    assert doc["config"]["tiny"] is True and "postgres_url" not in doc["config"]
    md = (root / "out" / "results.md").read_text()
    assert "### offline" in md and "| case | size |" in md and "time_growth" in md
    assert not (root / "data").exists() and not (root / "mlflow.db").exists()  # scratch work stays in --work


def test_missing_suite_is_a_row_with_an_error_not_a_crash(tmp_path, monkeypatch):
    import benchmarks.run as R

    monkeypatch.setitem(R.SUITES, "queue", "benchmarks.no_such_suite")
    rows = R.run(BenchConfig.make(tiny=True, work_dir=tmp_path / "w"), tmp_path, suites=("queue",))
    assert rows == [{"suite": "queue", "case": "-", "ok": False, "error": "benchmarks.no_such_suite does not exist yet"}]
    assert "does not exist yet" in (tmp_path / "results.md").read_text()


def test_markdown_marks_a_missed_target():
    rows = [{"suite": "offline", "case": "score", "size": 1_000_000, "wall_s": 41.5, "target": "< 30 s", "pass": False},
            {"suite": "offline", "case": "train_models", "size": 1_000_000, "wall_s": 90.0, "target": "< 180 s",
             "pass": True}]
    info = {"date": "2025-01-01", "cores": 2, "ram_gb": 24, "python": "3.11", "git_commit": "abc", "git_dirty": False,
            "load_average": [1.0, 1.0, 1.0]}
    md = markdown(rows, info, BenchConfig())
    assert "**FAIL**" in md and "| pass |" in md


def test_unknown_suite_is_one_readable_line(tmp_path):
    res = subprocess.run([DOCKET, "bench", "--tiny", "--suites", "nope", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "unknown suite" in res.stderr and "Traceback" not in res.stderr
