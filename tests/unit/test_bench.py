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
from benchmarks.machine import cpu_model, speed_probe
from benchmarks.run import markdown, write

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
    assert rows == [{"suite": "queue", "case": "-", "ok": False, "error": "benchmarks.no_such_suite does not exist yet",
                     "cpu_model": cpu_model()}]
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


CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
stepping\t: 1
cpu MHz\t\t: 2445.406
flags\t\t: fpu vme

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: Something Else
cpu MHz\t\t: 1800.000
"""


def test_cpu_model_names_the_first_processor_with_its_family_model_stepping_and_clock():
    assert cpu_model(CPUINFO) == "AMD EPYC (family 25 model 1 stepping 1, 2445 MHz)"


def test_cpu_model_without_the_numbers_is_the_name_and_without_a_name_unknown():
    assert cpu_model("model name\t: Intel(R) Xeon(R)   CPU @ 2.20GHz\n") == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert cpu_model("processor\t: 0\nCPU implementer\t: 0x41\n") == "unknown"  # e.g. ARM: no model name
    assert cpu_model("") == "unknown"


def test_cpu_model_is_unknown_where_there_is_no_proc_cpuinfo(monkeypatch, tmp_path):
    import benchmarks.machine as M

    monkeypatch.setattr(M, "CPUINFO", tmp_path / "absent")
    assert cpu_model() == "unknown"


def test_speed_probe_times_its_three_parts():
    probe = speed_probe()
    assert set(probe) == {"python_ms", "numpy_ms", "lightgbm_ms"}
    assert all(isinstance(v, float) and v > 0 for v in probe.values()), probe


def test_every_written_row_has_the_cpu_model_and_the_markdown_header_names_it_and_the_probe(tmp_path):
    rows = [{"suite": "offline", "case": "score", "size": 2_000, "wall_s": 1.5},
            {"suite": "online", "case": "docket /score", "server_cpu_ms_per_request": 4.0,
             "client_cpu_ms_per_request": 1.0}]
    json_path, md_path = write(rows, BenchConfig.make(tiny=True, work_dir=tmp_path / "w"), tmp_path)
    doc = json.loads(json_path.read_text())
    model = doc["machine"]["cpu_model"]
    assert model and all(r["cpu_model"] == model for r in doc["results"])
    assert set(doc["machine"]["speed_probe"]) == {"python_ms", "numpy_ms", "lightgbm_ms"}
    header = md_path.read_text().splitlines()[0]
    assert f"cores of {model}," in header and "Speed probe" in header and "LightGBM" in header
    md = md_path.read_text()
    assert "| cpu_model |" not in md  # named once in the header, not in every table
    assert "not a gauge" in md  # the note says what client CPU per request does not show
