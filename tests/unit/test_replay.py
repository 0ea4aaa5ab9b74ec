"""The queue replay: tiny hand-built teams, properties against the live queue's ranking, and the simulation."""
from __future__ import annotations

import ast
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features import vocabulary as V
from serving.queue_policy import load_queue_policy, rank_cases
from training.replay import (
    SUMMARY_COLUMNS,
    Team,
    arrival_rate,
    oracle_priority,
    replay,
    staffing,
    summarise,
    window_arrivals,
)

T0 = pd.Timestamp("2025-03-01 20:00", tz="UTC")
GOALS = {"threats_of_harm": 1.0, "harassment": 8.0, "spam": 48.0}
AGING = 50.0
UNCAPPED = math.inf


def cases(rows: list[tuple[str, float, str]]) -> pd.DataFrame:
    """Arrivals from (report_id, minutes after T0, category)."""
    return pd.DataFrame({
        "report_id": [r[0] for r in rows],
        "created_at": [T0 + pd.Timedelta(minutes=r[1]) for r in rows],
        "category": [r[2] for r in rows],
        "family": [V.CATEGORY_FAMILY[r[2]] for r in rows],
        "severity": ["high"] * len(rows),
        "valid": [True] * len(rows),
    })


def one_investigator(arrivals: pd.DataFrame, priority, minutes_per_case: float, policy: str = "priority",
                     goals: dict = GOALS, cap: float = UNCAPPED) -> pd.DataFrame:
    """A team of exactly one investigator taking `minutes_per_case` per case (window chosen to make it so)."""
    team = Team(1.0, handle_minutes=minutes_per_case)
    window = len(arrivals) * minutes_per_case
    assert staffing(team, arrival_rate(arrivals, window)).investigators == 1
    return replay(arrivals, np.asarray(priority, float), team, goals, AGING, policy, aging_cap_points=cap,
                  window_minutes=window)


def picked_order(result: pd.DataFrame) -> list[str]:
    return result.sort_values("pick_seq")["report_id"].tolist()


def test_staffing_gives_exactly_the_capacity_share_of_arrivals():
    for share in (0.8, 1.0, 1.2):
        for rate in (0.05, 0.0866, 1.3):
            team = Team(share)
            staff = staffing(team, rate)
            assert staff.investigators == max(1, int(np.ceil(team.investigators(rate) - 1e-9)))
            assert staff.investigators / staff.minutes_per_case == pytest.approx(share * rate)
            assert staff.minutes_per_case >= team.handle_minutes - 1e-9


def test_one_investigator_picks_the_highest_priority_first():
    arrivals = cases([("a", 0, "spam"), ("b", 0, "spam"), ("c", 0, "spam")])
    result = one_investigator(arrivals, [10, 90, 50], minutes_per_case=20)
    assert picked_order(result) == ["b", "c", "a"]
    assert result.set_index("report_id")["time_to_action"].to_dict() == pytest.approx({"b": 0, "c": 20, "a": 40})


def test_fifo_picks_in_arrival_order_whatever_the_priority():
    arrivals = cases([("c", 2, "spam"), ("a", 0, "spam"), ("b", 1, "spam")])
    result = one_investigator(arrivals, [90, 10, 50], minutes_per_case=20, policy="fifo")
    assert picked_order(result) == ["a", "b", "c"]


@pytest.mark.parametrize("busy_minutes, first_after_blocker", [(30, "new_high"), (90, "old_low")])
def test_aging_lets_an_old_low_case_overtake_a_new_high_one_after_enough_goals(busy_minutes, first_after_blocker):
    # One-hour goal: the old case gains 50 points per hour waited. At the second pick it has waited
    # `busy_minutes`: 10 + 25 = 35 < 60 (new case first) or 10 + 75 = 85 > 60 (old case first).
    arrivals = cases([("blocker", 0, "threats_of_harm"), ("old_low", 0, "threats_of_harm"),
                      ("new_high", busy_minutes - 1, "threats_of_harm")])
    result = one_investigator(arrivals, [100, 10, 60], minutes_per_case=busy_minutes)
    assert picked_order(result)[:2] == ["blocker", first_after_blocker]


@pytest.mark.parametrize("new_priority, first_after_blocker", [(30, "old_low"), (40, "new_high")])
def test_capped_aging_lifts_an_old_case_over_newer_ones_only_up_to_the_cap(new_priority, first_after_blocker):
    # After 90 minutes of a one-hour goal the old case has aged 75 points, capped at 25: 10 + 25 = 35,
    # above a new case at 30 but below one at 40, however long it has waited.
    arrivals = cases([("blocker", 0, "threats_of_harm"), ("old_low", 0, "threats_of_harm"),
                      ("new_high", 89, "threats_of_harm")])
    result = one_investigator(arrivals, [100, 10, new_priority], minutes_per_case=90, cap=25.0)
    assert picked_order(result)[:2] == ["blocker", first_after_blocker]


def test_the_policy_file_caps_aging_and_the_live_rule_applies_the_cap():
    qp = load_queue_policy()
    assert 0 < qp.aging_cap_points < 100 and qp.aging_points_per_goal > 0
    _, eff = rank_cases(np.array(["a", "b"]), np.zeros(2), np.array([10.0, 10.0]), np.array([0.0, 0.0]),
                        np.array([1.0, 1.0]), 1e6, qp)  # both waited ~278 goals
    assert eff.tolist() == [10.0 + qp.aging_cap_points] * 2


def test_ties_go_to_the_earlier_deadline_then_the_report_id_and_repeat_exactly():
    # All arrive together with equal priority: the 1-hour goal's deadline comes first, then ids in order.
    arrivals = cases([("z", 0, "spam"), ("y", 0, "threats_of_harm"), ("b", 0, "spam"), ("a", 0, "spam")])
    result = one_investigator(arrivals, [50, 50, 50, 50], minutes_per_case=10)
    assert picked_order(result) == ["y", "a", "b", "z"]
    # Priorities equal after the live queue's 6-decimal rounding tie too, even though "b" is a hair higher.
    hair = one_investigator(cases([("b", 0, "spam"), ("a", 0, "spam")]), [50.0000004, 50.0], minutes_per_case=10)
    assert picked_order(hair) == ["a", "b"]
    shuffled = arrivals.iloc[[2, 0, 3, 1]].reset_index(drop=True)
    again = one_investigator(shuffled, [50, 50, 50, 50], minutes_per_case=10)
    pd.testing.assert_frame_equal(result.set_index("report_id").sort_index(), again.set_index("report_id").sort_index())


def test_a_free_investigator_waits_for_the_next_arrival():
    arrivals = cases([("a", 0, "spam"), ("b", 300, "spam")])
    result = one_investigator(arrivals, [1, 99], minutes_per_case=20).set_index("report_id")
    assert result.loc["b", "picked_at"] == T0 + pd.Timedelta(minutes=300)
    assert result.loc["b", "time_to_action"] == 0 and not result["goal_missed"].any()


def test_investigators_idle_since_before_a_burst_pick_no_case_before_it_arrives():
    # Six investigators free at 20:52 after the first batch; the second batch arrives at 21:01.
    arrivals = cases([(f"r{i:03d}", 0 if i < 10 else 61, "spam") for i in range(23)])
    result = replay(arrivals, np.zeros(23), Team(3.0, 45.0), GOALS, AGING, window_minutes=600)
    assert (result["picked_at"] >= arrivals["created_at"]).all()
    assert (result.loc[10:, "picked_at"] == T0 + pd.Timedelta(minutes=61)).sum() == 2  # the two idle ones


def test_a_drain_limit_leaves_late_cases_unpicked_and_counts_them_to_the_stop():
    arrivals = cases([("a", 0, "threats_of_harm"), ("b", 0, "threats_of_harm"), ("c", 0, "threats_of_harm")])
    team = Team(1.0, handle_minutes=120)
    result = replay(arrivals, np.array([3.0, 2.0, 1.0]), team, GOALS, AGING, window_minutes=360,
                    drain_hours=1.0).set_index("report_id")
    assert result["picked"].to_dict() == {"a": True, "b": False, "c": False}
    assert result.loc["b", "time_to_action"] == pytest.approx(60) and pd.isna(result.loc["b", "picked_at"])
    assert result.loc[["b", "c"], "goal_missed"].tolist() == [False, False]  # stop == deadline: not yet missed


@st.composite
def queues(draw):
    n = draw(st.integers(1, 40))
    categories = list(GOALS)
    rows = [(f"r{i:03d}", draw(st.sampled_from([0.0, 5.0, 30.0, 61.0]) | st.floats(0, 600)),
             draw(st.sampled_from(categories))) for i in range(n)]
    priority = draw(st.lists(st.sampled_from([0.0, 25.0, 50.0, 99.5]) | st.floats(0, 100), min_size=n, max_size=n))
    share = draw(st.sampled_from([0.8, 1.0, 1.2, 3.0]))
    handle = draw(st.sampled_from([5.0, 20.0, 45.0]))
    return cases(rows), np.array(priority), Team(share, handle)


@settings(max_examples=250, deadline=None)
@given(queues(), st.sampled_from(["priority", "fifo"]), st.sampled_from([AGING, 5.0, 0.0]),
       st.sampled_from([UNCAPPED, 25.0, 4.0, 0.0]))
def test_every_case_is_picked_once_never_early_and_in_the_live_queues_order(queue, policy, aging, cap):
    arrivals, priority, team = queue
    window = 600.0
    result = replay(arrivals, priority, team, GOALS, aging, policy, aging_cap_points=cap, window_minutes=window)
    assert result["picked"].all() and sorted(result["pick_seq"]) == list(range(len(arrivals)))
    assert (result["picked_at"] >= arrivals["created_at"]).all()
    qp = dataclasses.replace(load_queue_policy(), aging_points_per_goal=aging, aging_cap_points=cap)
    t0 = arrivals["created_at"].min()  # the replay's clock starts at the first arrival
    opened = ((arrivals["created_at"] - t0) / pd.Timedelta(seconds=1)).to_numpy(float)
    picked = ((result["picked_at"] - t0) / pd.Timedelta(seconds=1)).to_numpy(float)
    seq = result["pick_seq"].to_numpy(int)
    goal_h = arrivals["category"].map(GOALS).to_numpy(float)
    ids = arrivals["report_id"].to_numpy(object)
    for s in range(len(arrivals)):
        now = picked[seq == s][0]
        waiting = np.flatnonzero((opened <= now) & (seq >= s))
        if policy == "priority":
            order, _ = rank_cases(ids[waiting], np.zeros(len(waiting)), priority[waiting], opened[waiting],
                                  goal_h[waiting], now, qp)
        else:
            order = np.lexsort((ids[waiting], opened[waiting]))
        assert seq[waiting[order[0]]] == s
    staff = staffing(team, arrival_rate(arrivals, window))
    starts = np.sort(picked)
    assert (starts[staff.investigators:] - starts[:-staff.investigators] >= staff.minutes_per_case * 60 - 1e-6).all()


@settings(max_examples=60, deadline=None)
@given(queues())
def test_ordering_moves_waits_between_cases_but_not_their_total(queue):
    # Same handle time, nobody idle while a case waits: the pick times are the same whatever the order.
    arrivals, priority, team = queue
    by = {p: replay(arrivals, priority, team, GOALS, AGING, p, window_minutes=600) for p in ("priority", "fifo")}
    assert by["priority"]["time_to_action"].sum() == pytest.approx(by["fifo"]["time_to_action"].sum())


def test_replay_does_not_import_serving():
    tree = ast.parse((Path(__file__).resolve().parents[2] / "training" / "replay.py").read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    modules += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in modules if m.split(".")[0] == "serving"]


@pytest.fixture(scope="module")
def window(tables):
    arrivals = window_arrivals(tables, last_share=0.2)
    return arrivals, oracle_priority(tables["truth_reports"], arrivals["report_id"])


def _replay_window(window, share: float, policy: str) -> pd.DataFrame:
    arrivals, priority = window
    qp = load_queue_policy()
    return replay(arrivals, priority, Team(share), qp.goals_hours, qp.aging_points_per_goal, policy,
                  aging_cap_points=qp.aging_cap_points)


def test_window_is_the_last_fifth_of_reports_with_outcome_labels(tables, window):
    arrivals, priority = window
    assert len(arrivals) == round(0.2 * len(tables["reports"]))
    assert arrivals["created_at"].min() >= tables["reports"]["created_at"].quantile(0.79)
    assert arrivals["severity"].notna().sum() == arrivals["valid"].sum()
    assert priority.shape == (len(arrivals),) and (priority >= 0).all() and (priority <= 100).all()


def test_more_capacity_acts_sooner(window):
    for policy in ("priority", "fifo"):
        low, high = (_replay_window(window, share, policy)["time_to_action"].mean() for share in (0.8, 1.2))
        assert high < low


def test_oracle_priority_acts_on_high_and_critical_sooner_than_fifo(window, capsys):
    arrivals, _ = window
    serious = (arrivals["valid"] & arrivals["severity"].isin(["high", "critical"])).to_numpy()
    lines = []
    for share in (0.8, 1.0, 1.2):
        start = time.perf_counter()
        by = {p: _replay_window(window, share, p) for p in ("priority", "fifo")}
        seconds = (time.perf_counter() - start) / 2
        mean = {p: r.loc[serious, "time_to_action"].mean() for p, r in by.items()}
        missed = {p: r.loc[serious, "goal_missed"].mean() for p, r in by.items()}
        lines.append(f"capacity {share}: high+critical mean minutes priority {mean['priority']:.0f} vs fifo "
                     f"{mean['fifo']:.0f} (ratio {mean['priority'] / mean['fifo']:.2f}); goals missed "
                     f"{missed['priority']:.1%} vs {missed['fifo']:.1%}; {seconds:.2f} s per replay")
        assert seconds < 5
        if share == 1.0:
            assert mean["priority"] < mean["fifo"]
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def test_summary_has_a_row_per_family_and_severity_plus_all(window):
    arrivals, _ = window
    summary = summarise(_replay_window(window, 1.0, "priority"), arrivals)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    everything = summary[(summary["family"] == "all") & (summary["severity"] == "all")].iloc[0]
    assert everything["cases"] == arrivals["valid"].sum() and everything["not_picked"] == 0
    per_cell = summary[(summary["family"] != "all") & (summary["severity"] != "all")]
    assert per_cell["cases"].sum() == everything["cases"]
    assert ((summary["p90_minutes"] >= 0) & summary["goal_missed_share"].between(0, 1)).all()
