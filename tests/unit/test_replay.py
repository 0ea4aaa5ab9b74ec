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
from policy.file import load_queue_policy
from policy.queue import rank_cases
from policy.spikes import SpikeConfig, detect_spikes
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
                     goals: dict = GOALS, cap: float = UNCAPPED, alerts: pd.DataFrame | None = None) -> pd.DataFrame:
    """A team of exactly one investigator taking `minutes_per_case` per case (window chosen to make it so)."""
    team = Team(1.0, handle_minutes=minutes_per_case)
    n_cases = arrival_rate(arrivals, 1.0, alerts)  # cases in the window
    window = n_cases * minutes_per_case
    staff = staffing(team, arrival_rate(arrivals, window, alerts))
    assert staff.investigators == 1 and staff.minutes_per_case == pytest.approx(minutes_per_case)
    return replay(arrivals, np.asarray(priority, float), team, goals, AGING, policy, aging_cap_points=cap,
                  window_minutes=window, alerts=alerts)


def alert(alert_id: str, joins: list[tuple[str, float]]) -> pd.DataFrame:
    """An alert grouping from (report_id, minute after T0 it joined alert `alert_id`)."""
    return pd.DataFrame({"report_id": [j[0] for j in joins], "alert_id": alert_id,
                         "joined_at": [T0 + pd.Timedelta(minutes=j[1]) for j in joins]})


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


def test_a_spikes_reports_are_acted_on_together_at_one_pick_for_one_handle_time():
    # The detector fires at s2's arrival (minute 2): s1, waiting since minute 1, joins then; s3 and s4
    # join as they arrive, while the alert case still waits for the investigator busy with x.
    arrivals = cases([("x", 0, "spam"), ("s1", 1, "harassment"), ("s2", 2, "harassment"),
                      ("s3", 3, "harassment"), ("s4", 4, "harassment"), ("y", 5, "spam")])
    alerts = alert("alert-subject:a1:t", [("s1", 2), ("s2", 2), ("s3", 3), ("s4", 4)])
    result = one_investigator(arrivals, [50, 1, 1, 1, 1, 99], minutes_per_case=10, alerts=alerts)
    r = result.set_index("report_id")
    spike = ["s1", "s2", "s3", "s4"]
    assert (r.loc[spike, "picked_at"] == T0 + pd.Timedelta(minutes=10)).all()
    assert r.loc[spike, "pick_seq"].nunique() == 1 and (r.loc[spike, "alert_id"] == "alert-subject:a1:t").all()
    assert r.loc["y", "picked_at"] == T0 + pd.Timedelta(minutes=20)  # one handle time for the four
    assert r.loc[["x", "y"], "alert_id"].isna().all()
    assert r["time_to_action"].loc[spike].tolist() == pytest.approx([9, 8, 7, 6])


@pytest.mark.parametrize("policy", ["priority", "fifo"])
def test_an_alert_case_jumps_every_ordinary_case_under_either_ordering(policy):
    # old_high has waited longest with the highest priority; the alert opened after it still goes first.
    arrivals = cases([("blocker", 0, "spam"), ("old_high", 0, "threats_of_harm"), ("spiked", 5, "spam")])
    alerts = alert("alert-subject:a1:t", [("spiked", 5)])
    result = one_investigator(arrivals, [100, 99, 0], minutes_per_case=10, policy=policy, alerts=alerts)
    assert picked_order(result) == ["blocker", "spiked", "old_high"]


@pytest.mark.parametrize("policy", ["priority", "fifo"])
def test_reports_waiting_before_the_alert_opens_are_merged_into_it(policy):
    # early arrives at 0 to a free investigator: picked on its own before the detector fires, and stays so.
    # s1 and s2 wait behind the blocker until the detector fires at s3 (minute 8): they leave the queue
    # for the alert case instead of being picked one by one after `other`.
    arrivals = cases([("early", 0, "spam"), ("other", 1, "spam"), ("s1", 2, "spam"), ("s2", 3, "spam"),
                      ("s3", 8, "spam")])
    alerts = alert("alert-subject:a1:t", [("early", 8), ("s1", 8), ("s2", 8), ("s3", 8)])
    result = one_investigator(arrivals, [1, 90, 1, 1, 1], minutes_per_case=10, policy=policy, alerts=alerts)
    r = result.set_index("report_id")
    assert r.loc["early", "picked_at"] == T0 and pd.isna(r.loc["early", "alert_id"])
    assert (r.loc[["s1", "s2", "s3"], "picked_at"] == T0 + pd.Timedelta(minutes=10)).all()
    assert r.loc["other", "picked_at"] == T0 + pd.Timedelta(minutes=20)
    assert result["pick_seq"].nunique() == 3


def test_fifo_and_priority_merge_the_same_reports_into_the_same_alert_cases():
    # Both alerts open while the one investigator is busy with r00 (20 minutes per case); first in, first
    # out then takes alert a (its first report is older), priority takes alert b (its best report is higher).
    arrivals = cases([(f"r{i:02d}", i, "spam") for i in range(12)])
    alerts = pd.concat([alert("alert-subject:a:t", [("r02", 4), ("r03", 4), ("r04", 4), ("r06", 6)]),
                        alert("alert-subject:b:t", [("r07", 9), ("r09", 9), ("r10", 10)])])
    by = {p: one_investigator(arrivals, np.arange(12.0), minutes_per_case=20, policy=p, alerts=alerts)
          for p in ("priority", "fifo")}
    assert by["priority"]["alert_id"].fillna("own").tolist() == by["fifo"]["alert_id"].fillna("own").tolist()
    merged = by["fifo"].dropna(subset=["alert_id"]).groupby("alert_id")["report_id"].apply(list).to_dict()
    assert merged == {"alert-subject:a:t": ["r02", "r03", "r04", "r06"], "alert-subject:b:t": ["r07", "r09", "r10"]}
    second = {p: r.loc[r["pick_seq"] == 1, "alert_id"].unique().tolist() for p, r in by.items()}
    assert second == {"fifo": ["alert-subject:a:t"], "priority": ["alert-subject:b:t"]}
    assert all(r["pick_seq"].nunique() == 7 for r in by.values())  # 5 ordinary cases + 2 alert cases


def test_a_report_joining_a_picked_alert_is_acted_on_when_its_handling_ends_or_else_is_a_case_of_its_own():
    # The alert opens at 0 and is picked at once (10 minutes per case): r2 joins at 5, while it is in hand,
    # and is acted on at 10 with it; r3 joins at 15, after it was resolved, and is a case of its own.
    arrivals = cases([("r1", 0, "spam"), ("r2", 5, "spam"), ("r3", 15, "spam")])
    alerts = alert("alert-subject:a1:t", [("r1", 0), ("r2", 5), ("r3", 15)])
    result = one_investigator(arrivals, [1, 1, 1], minutes_per_case=10, alerts=alerts).set_index("report_id")
    assert result["picked_at"].tolist() == [T0, T0 + pd.Timedelta(minutes=10), T0 + pd.Timedelta(minutes=15)]
    assert result["pick_seq"].tolist() == [0, 0, 1]
    assert result["alert_id"].fillna("own").tolist() == ["alert-subject:a1:t", "alert-subject:a1:t", "own"]
    assert result["time_to_action"].tolist() == pytest.approx([0, 5, 0])


def test_the_team_is_sized_to_cases_one_per_alert_case():
    arrivals = cases([(f"r{i}", i, "spam") for i in range(10)])
    alerts = alert("alert-subject:a:t", [(f"r{i}", 5) for i in range(6)])
    assert arrival_rate(arrivals, 100.0) == pytest.approx(10 / 100)
    assert arrival_rate(arrivals, 100.0, alerts) == pytest.approx(5 / 100)  # 4 ordinary + 1 alert case


def test_alert_groups_stream_the_live_detector_over_the_reports():
    qp = load_queue_policy()
    cfg = SpikeConfig.from_dict(qp.spikes)
    n = cfg.min_reports + 3
    times = [T0 + pd.Timedelta(minutes=i) for i in range(n)] + [T0 + pd.Timedelta(minutes=2)]
    reports = pd.DataFrame({
        "report_id": [f"r{i:02d}" for i in range(n)] + ["quiet"], "created_at": times,
        "subject_id": ["a_seller"] * n + ["b_seller"], "show_id": None,
        "reporter_id": [f"u{i}" for i in range(n)] + ["u0"], "reporter_type": "buyer", "category": "spam",
    }).sample(frac=1.0, random_state=3)  # row order does not matter
    groups = qp.alert_groups(reports)
    (whole,) = detect_spikes(reports.assign(reporter_age_days=np.nan, reporter_accuracy=np.nan,
                                            reporter_past_resolved=np.nan, reporter_created_at=pd.NaT), cfg)
    assert sorted(groups["report_id"]) == sorted(whole.report_ids) and "quiet" not in set(groups["report_id"])
    assert set(groups["alert_id"]) == {f"alert-{whole.key}"}  # Queue.open_alert's case id
    fired = T0 + pd.Timedelta(minutes=cfg.min_reports - 1)  # at the min_reports-th report
    joined = groups.set_index("report_id")["joined_at"]
    assert (joined.loc[[f"r{i:02d}" for i in range(cfg.min_reports)]] == fired).all()
    later = [f"r{i:02d}" for i in range(cfg.min_reports, n)]
    assert joined.loc[later].tolist() == [T0 + pd.Timedelta(minutes=i) for i in range(cfg.min_reports, n)]


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


@st.composite
def alerted_queues(draw):
    """A queue plus alerts as the live detector makes them: the detector fires at the arrival of one
    report of the alert; the reports that arrived before join then, the later ones as they arrive."""
    arrivals, priority, team = draw(queues())
    n = len(arrivals)
    which = draw(st.lists(st.integers(-1, 2), min_size=n, max_size=n))
    created = arrivals["created_at"]
    frames = []
    for a in sorted(set(which) - {-1}):
        members = [i for i in range(n) if which[i] == a]
        trigger = created.iloc[draw(st.sampled_from(members))]
        frames.append(pd.DataFrame({
            "report_id": arrivals["report_id"].iloc[members].to_numpy(),
            "alert_id": f"alert-subject:a{2 - a}:x",  # ids sort unlike the alert numbers
            "joined_at": [max(created.iloc[i], trigger) for i in members]}))
    alerts = pd.concat(frames, ignore_index=True) if frames else None
    return arrivals, priority, team, alerts


def assert_live_order(arrivals: pd.DataFrame, priority: np.ndarray, result: pd.DataFrame, policy: str, qp,
                      alerts: pd.DataFrame | None) -> None:
    """Every pick took the case the live queue ranks first among the cases waiting at that moment: ordinary
    cases (tier 0) not yet picked nor merged into an alert, and open alert cases (tier 1, aged from their
    first report against the shortest goal they opened with, base = the best report joined so far)."""
    t0 = arrivals["created_at"].min()  # the replay's clock starts at the first arrival

    def secs(ts: pd.Series) -> np.ndarray:
        return ((ts - t0) / pd.Timedelta(seconds=1)).to_numpy(float)

    opened, picked = secs(arrivals["created_at"]), secs(result["picked_at"])
    seq = result["pick_seq"].to_numpy(int)
    goal_h = arrivals["category"].map(GOALS).to_numpy(float)
    ids = ("case-" + arrivals["report_id"]).to_numpy(object)
    by_alert = result["alert_id"].to_numpy(object)
    own = pd.isna(by_alert)
    g = (alerts if alerts is not None else pd.DataFrame(columns=["report_id", "alert_id", "joined_at"]))
    g = g.set_index("report_id").reindex(arrivals["report_id"])
    member_of = g["alert_id"].to_numpy(object)
    joined = np.where(g["alert_id"].notna(), secs(pd.to_datetime(g["joined_at"], utc=True)), np.inf)
    for s in range(seq.max() + 1):
        now = picked[seq == s].min()  # reports joining a case in hand are acted on later, with its seq
        ordinary = np.flatnonzero((opened <= now) & ((own & (seq >= s)) | (~own & (now < joined))))
        case_ids, tier = list(ids[ordinary]), [0] * len(ordinary)
        base, start, goal = list(priority[ordinary]), list(opened[ordinary]), list(goal_h[ordinary])
        for a in sorted(set(member_of[pd.notna(member_of)])):
            m = member_of == a
            opened_at = joined[m].min()
            if opened_at > now or (seq[by_alert == a] < s).any():
                continue  # not open yet, or picked already
            case_ids.append(a)
            tier.append(1)
            base.append(priority[m & (joined <= now)].max())
            start.append(opened[m].min())
            goal.append(goal_h[m & (joined == opened_at)].min())
        case_ids, tier = np.array(case_ids, dtype=object), np.array(tier)
        if policy == "priority":
            order, _ = rank_cases(case_ids, tier, np.array(base), np.array(start), np.array(goal), now, qp)
        else:
            order = np.lexsort((case_ids, start, -tier))
        took = by_alert[seq == s][0] if pd.notna(by_alert[seq == s]).any() else ids[seq == s][0]
        assert case_ids[order[0]] == took


@settings(max_examples=250, deadline=None)
@given(queues(), st.sampled_from(["priority", "fifo"]), st.sampled_from([AGING, 5.0, 0.0]),
       st.sampled_from([UNCAPPED, 25.0, 4.0, 0.0]))
def test_every_case_is_picked_once_never_early_and_in_the_live_queues_order(queue, policy, aging, cap):
    arrivals, priority, team = queue
    window = 600.0
    result = replay(arrivals, priority, team, GOALS, aging, policy, aging_cap_points=cap, window_minutes=window)
    assert result["picked"].all() and sorted(result["pick_seq"]) == list(range(len(arrivals)))
    assert (result["picked_at"] >= arrivals["created_at"]).all() and result["alert_id"].isna().all()
    qp = dataclasses.replace(load_queue_policy(), aging_points_per_goal=aging, aging_cap_points=cap)
    assert_live_order(arrivals, priority, result, policy, qp, None)
    staff = staffing(team, arrival_rate(arrivals, window))
    starts = np.sort(((result["picked_at"] - arrivals["created_at"].min()) / pd.Timedelta(seconds=1)).to_numpy())
    assert (starts[staff.investigators:] - starts[:-staff.investigators] >= staff.minutes_per_case * 60 - 1e-6).all()


@settings(max_examples=250, deadline=None)
@given(alerted_queues(), st.sampled_from(["priority", "fifo"]), st.sampled_from([AGING, 0.0]),
       st.sampled_from([UNCAPPED, 25.0, 0.0]))
def test_alert_cases_are_picked_in_the_live_queues_order_with_their_tier(queue, policy, aging, cap):
    arrivals, priority, team, alerts = queue
    window = 600.0
    result = replay(arrivals, priority, team, GOALS, aging, policy, aging_cap_points=cap, window_minutes=window,
                    alerts=alerts)
    assert result["picked"].all() and (result["picked_at"] >= arrivals["created_at"]).all()
    qp = dataclasses.replace(load_queue_policy(), aging_points_per_goal=aging, aging_cap_points=cap)
    assert_live_order(arrivals, priority, result, policy, qp, alerts)
    # One handle time per pick: an investigator's picks are never closer than the time per case.
    staff = staffing(team, arrival_rate(arrivals, window, alerts))
    t0 = arrivals["created_at"].min()
    starts = np.sort(result.groupby("pick_seq")["picked_at"].min().sub(t0).dt.total_seconds().to_numpy())
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


def test_the_windows_spikes_are_replayed_as_alert_cases_for_every_ordering(tables, window):
    arrivals, priority = window
    qp = load_queue_policy()
    reports = tables["reports"].set_index("report_id").loc[arrivals["report_id"]].reset_index()
    alerts = qp.alert_groups(reports)
    assert len(alerts) and set(alerts["report_id"]) <= set(arrivals["report_id"])
    for policy in ("priority", "fifo"):
        result = replay(arrivals, priority, Team(1.0), qp.goals_hours, qp.aging_points_per_goal, policy,
                        aging_cap_points=qp.aging_cap_points, alerts=alerts)
        assert result["picked"].all()
        acted = result.dropna(subset=["alert_id"])
        assert set(acted["alert_id"]) == set(alerts["alert_id"])  # every alert case was picked
        assert acted.groupby("alert_id")["pick_seq"].nunique().eq(1).all()  # at one pick each
        assert result["pick_seq"].nunique() < len(arrivals)


def test_summary_has_a_row_per_family_and_severity_plus_all(window):
    arrivals, _ = window
    summary = summarise(_replay_window(window, 1.0, "priority"), arrivals)
    assert tuple(summary.columns) == SUMMARY_COLUMNS
    everything = summary[(summary["family"] == "all") & (summary["severity"] == "all")].iloc[0]
    assert everything["cases"] == arrivals["valid"].sum() and everything["not_picked"] == 0
    per_cell = summary[(summary["family"] != "all") & (summary["severity"] != "all")]
    assert per_cell["cases"].sum() == everything["cases"]
    assert ((summary["p90_minutes"] >= 0) & summary["goal_missed_share"].between(0, 1)).all()
