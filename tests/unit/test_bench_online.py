"""The online benchmark runs end to end at a tiny size: both servers for real, the load generator apart."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.config import BenchConfig
from benchmarks.online import CASES, run

CASE_FIELDS = {"suite", "case", "server", "workers", "path_kind", "rows_per_request", "concurrency", "requests", "ok", "errors",
               "throughput_rps", "throughput_rows_s", "p50_ms", "p95_ms", "p99_ms", "rss_mb", "load_avg_1m"}
RATIO_FIELDS = {"suite", "case", "server", "path_kind", "rows_per_request", "concurrency", "throughput_ratio",
                "p99_ratio"}


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def rows(work_dir) -> list[dict]:
    return run(BenchConfig.make(tiny=True, work_dir=work_dir, requests=12, duration_s=5.0, concurrency=(1, 2)))


def test_online_benchmark_measures_every_case_at_every_concurrency(rows):
    cases = [r for r in rows if "throughput_rps" in r]
    assert len(cases) == len(CASES) * 2
    for r in cases:
        assert CASE_FIELDS <= set(r), r
        assert r["errors"] == 0, r.get("error_samples")
        assert r["ok"] > 0 and r["rss_mb"] > 0
        assert r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"]


def test_online_benchmark_compares_docket_with_mlflow_both_ways(rows):
    ratios = [r for r in rows if "throughput_ratio" in r]
    assert {(r["path_kind"], r["rows_per_request"], r["concurrency"]) for r in ratios} == {
        (kind, n, c) for kind in ("model", "score") for n in (1, 100) for c in (1, 2)}
    for r in ratios:
        assert RATIO_FIELDS <= set(r) and r["throughput_ratio"] > 0 and r["p99_ratio"] > 0


def test_online_benchmark_leaves_no_server_running(rows, work_dir):
    mine = f"DOCKET_DATA_DIR={work_dir / 'online' / 'data'}".encode()
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mine in (proc / "environ").read_bytes().split(b"\0"):
                left.append(proc.name)
        except OSError:
            continue
    assert not left, f"processes still running: {left}"


def _case(**kw) -> dict:
    return {"server": "docket", "path_kind": "score", "rows_per_request": 1, "concurrency": 8, "p99_ms": 20.0,
            "errors": 0, **kw}


@pytest.mark.parametrize("row, passed", [
    (_case(), True),
    (_case(p99_ms=25.0), False),
    (_case(errors=1), False),
    (_case(p99_ms=None, errors=0), False),
    ({"server": "docket/mlflow", "path_kind": "model", "rows_per_request": 1, "concurrency": 8,
      "throughput_ratio": 2.4, "p99_ratio": 0.3}, True),
    ({"server": "docket/mlflow", "path_kind": "model", "rows_per_request": 100, "concurrency": 32,
      "throughput_ratio": 1.9, "p99_ratio": 0.3}, False),
    ({"server": "docket/mlflow", "path_kind": "model", "rows_per_request": 1, "concurrency": 1,
      "throughput_ratio": 3.0, "p99_ratio": 1.2}, False),
])
def test_targets_are_judged_where_the_issue_sets_them(row, passed):
    from benchmarks.online import judge

    judge(row)
    assert row["pass"] is passed and row["target"]


def test_no_target_on_other_cases():
    from benchmarks.online import judge

    row = _case(concurrency=1)
    judge(row)
    assert "pass" not in row and "target" not in row


def test_warm_up_waits_until_every_pooled_connection_answers_200_and_gives_up_on_a_server_that_never_does():
    """A worker still loading its models answers 503; the measurement must not start on its connections."""
    import asyncio

    import aiohttp
    from aiohttp import web

    from benchmarks import loadgen

    async def main():
        seen = {"n": 0}

        async def handler(request):
            seen["n"] += 1
            return web.Response(status=503 if seen["n"] <= 11 else 200)

        async def never(request):
            return web.Response(status=503)

        app = web.Application()
        app.router.add_post("/score", handler)
        app.router.add_post("/never", never)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        try:
            async with aiohttp.ClientSession() as session:
                await loadgen.warm_up(session, f"http://127.0.0.1:{port}/score", [b"{}"], 4, 2)
                answered = seen["n"]
                loadgen.WARMUP_SECONDS, saved = 0.5, loadgen.WARMUP_SECONDS
                try:
                    with pytest.raises(SystemExit, match="503"):
                        await loadgen.warm_up(session, f"http://127.0.0.1:{port}/never", [b"{}"], 4, 2)
                finally:
                    loadgen.WARMUP_SECONDS = saved
            return answered
        finally:
            await runner.cleanup()

    # 11 refusals span three rounds of 4; then two all-200 rounds: 5 rounds of 4 requests
    assert asyncio.run(main()) == 20


@pytest.mark.parametrize("original", [None, "ACTIVE"])
def test_servers_get_the_environment_the_harness_started_with_not_what_importing_training_added(monkeypatch, original):
    import benchmarks.online as O

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # what importing training.models does in the harness
    monkeypatch.setattr(O, "ORIGINAL_OMP_WAIT_POLICY", original)
    env = O.server_env({"DOCKET_WORKERS": "2"})
    assert env.get("OMP_WAIT_POLICY") == original
    assert env["DOCKET_WORKERS"] == "2" and env["PATH"].startswith(str(O.BIN))
    assert O.server_env({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"  # set for the case: kept


@pytest.mark.parametrize("imports", ["benchmarks.online, training.models", "training.models, benchmarks.online"])
def test_the_servers_get_no_omp_wait_policy_when_the_harness_started_without_one(imports):
    """In a fresh process like `docket bench`'s: importing training sets PASSIVE, in either order; servers get none."""
    import os
    import subprocess
    import sys

    code = (f"import os, {imports}; from benchmarks.online import server_env; "
            "print(os.environ.get('OMP_WAIT_POLICY'), server_env({}).get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2], timeout=120).stdout.split()
    assert out == ["PASSIVE", "None"]
