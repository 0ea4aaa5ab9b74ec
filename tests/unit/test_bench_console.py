"""The console benchmark runs end to end at tiny size (pages and investigators through the real service, SQLite)."""
from __future__ import annotations

import pytest

from benchmarks import console_bench as C
from benchmarks.config import BenchConfig


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[dict]:
    config = BenchConfig.make(tiny=True, work_dir=tmp_path_factory.mktemp("console-bench"), postgres_url=None)
    return C.run(config)


def by_case(rows: list[dict]) -> dict[str, dict]:
    return {r["case"]: r for r in rows}


def test_console_bench_times_the_queue_and_case_pages_without_errors(rows):
    cases = by_case(rows)
    for name in ("queue page", "queue rows refresh", "case page"):
        row = cases[name]
        assert row["store"] == "sqlite" and row["errors"] == 0, row["first_error"]
        assert row["requests"] == C.PAGE_REQUESTS_TINY and 0 < row["p50_ms"] <= row["p95_ms"] <= row["max_ms"]
        assert row["server_cpu_ms_per_request"] > 0 and row["load_avg"]
        assert row["open_cases"] >= C.OPEN_CASES_TINY
    case = cases["case page"]
    assert case["scored_cases"] > 0 and case["filler_cases"] > 0
    assert case["with_reasons"] == case["scored_cases"]  # the models' reasons show; filler cases have none


def test_console_bench_investigators_resolve_each_case_once_without_errors(rows):
    team = by_case(rows)["investigators"]
    assert team["investigators"] == C.INVESTIGATORS_TINY
    assert team["errors"] == 0, team["first_error"]
    assert team["resolves"] > 0 and team["resolves_per_s"] > 0
    assert team["exactly_once"] and team["resolved_twice"] == 0 and team["claimed_by_two"] == 0
    assert team["resolved_in_store"] == team["resolves"]
    steps = {r["case"]: r for r in rows if r["case"].startswith("investigators: ")}
    assert set(steps) == {f"investigators: {s}" for s in C.STEPS}
    assert steps["investigators: resolve"]["requests"] == team["resolves"]


def test_console_bench_tiny_rows_are_not_judged(rows):
    assert all("pass" not in r and "target" not in r for r in rows)


def test_console_bench_judges_the_issue_14_targets():
    queue = {"case": "queue page", "p95_ms": 310.0, "errors": 0}
    case = {"case": "case page", "p95_ms": 120.0, "errors": 0}
    team = {"case": "investigators", "errors": 0, "exactly_once": True, "resolves": 40}
    for row in (queue, case, team):
        C.judge(row)
    assert (queue["pass"], case["pass"], team["pass"]) == (False, True, True)
    C.judge(team | {"errors": 1})
    assert "target" in team
