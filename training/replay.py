"""Replaying a window of reports through a simulated team of investigators.

A deterministic discrete-event replay: cases arrive at their `created_at`; whenever an
investigator is free they take the best waiting case under the policy at that moment and
are busy for a fixed time per case. It answers "how long would cases have waited under this
ordering and this much staff", so base priorities from a model, a baseline and the oracle
can be compared on the same arrivals.

The team model (exact):
    arrivals per minute  lambda = cases / window minutes (window: first to last arrival unless
                                  `window_minutes` is given)
    team capacity        mu     = capacity_share x lambda              (cases the team finishes per minute)
    investigators        c      = mu x handle_minutes                  (fractional: `Team.investigators`)
    simulated as         k      = ceil(c) identical investigators, each busy k / mu minutes per case
                                  (= handle_minutes x k / c, never less than handle_minutes),
so the team's capacity is exactly mu while every pick still occupies one investigator for a
real stretch of time.

Policies:
    "priority"  the live queue's rule (serving.queue_policy.rank_cases, tier 0 for every case):
                effective priority = base + min(aging_points_per_goal x goals waited, aging_cap_points),
                rounded to 6 decimals; ties by the earlier deadline (created_at + goal), then report_id.
    "fifo"      arrival order: created_at, then report_id.

Speed: while a case ages, its aging is linear in time with a slope that depends only on its goal
(aging_points_per_goal / goal); once it reaches the cap (at created + goal x cap / aging points per
goal) its effective priority is base + cap. So cases with the same goal that are both still
aging, or both capped, never change order among themselves, and cases of one goal reach the cap in
arrival order. Waiting cases are kept in two heaps per distinct goal: the aging ones keyed by the
time-free intercept base - slope x created, the capped ones by base; before each pick the cases
whose cap time has passed move from the first to the second (stale entries are skipped). A pick
compares only the heads of those heaps (at most two per distinct goal) at the pick time, using the
live queue's exact key. Near-ties that the 6-decimal rounding could reorder are resolved by also
evaluating every case within 1e-5 of its heap's head. The clock runs in integer nanoseconds from the first arrival (so a pick is never
before its arrival by a rounding error); the ranking sees seconds as floats, as the live queue
does. 20k cases replay in about a third of a second.

End of the window: by default (`drain_hours=None`) the team keeps working after the last
arrival until every case is picked, so every time to action is real. With `drain_hours` the
replay stops that long after the last arrival; cases still waiting are not picked
(`picked` False, `picked_at` NaT) and their time to action is counted up to the stop (a lower
bound); `goal_missed` is exact for them whenever drain_hours is at least the longest goal.

Layering: this module does not import from serving; the goals and the aging rate are plain
arguments (read them from serving.queue_policy.load_queue_policy at the call site).
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import vocabulary as V
from training.scoring import SEVERITY_WEIGHTS

POLICIES: tuple[str, ...] = ("priority", "fifo")
ARRIVAL_COLUMNS: tuple[str, ...] = ("report_id", "created_at", "category", "family", "severity", "valid")
TIE_TOLERANCE = 1e-5  # intercept gap within which the 6-decimal rounding might reorder two cases
ROUND_DECIMALS = 6  # as serving.queue_policy.rank_cases


@dataclass(frozen=True)
class Team:
    """A team sized relative to the arrivals: see the module docstring for the exact model."""

    capacity_share: float  # team capacity as a share of the mean arrival rate (0.8, 1.0, 1.2)
    handle_minutes: float = 20.0  # time one investigator spends per case

    def investigators(self, arrivals_per_minute: float) -> float:
        """The (fractional) number of investigators whose capacity is capacity_share x arrivals."""
        return self.capacity_share * arrivals_per_minute * self.handle_minutes


@dataclass(frozen=True)
class Staffing:
    investigators: int
    minutes_per_case: float


def staffing(team: Team, arrivals_per_minute: float) -> Staffing:
    """ceil(c) investigators, each taking k / mu minutes per case, so the team's capacity is exactly mu."""
    if team.capacity_share <= 0 or team.handle_minutes <= 0 or arrivals_per_minute <= 0:
        raise ValueError("capacity_share, handle_minutes and the arrival rate must be positive")
    mu = team.capacity_share * arrivals_per_minute
    k = max(1, math.ceil(team.investigators(arrivals_per_minute) - 1e-9))
    return Staffing(investigators=k, minutes_per_case=k / mu)


def arrival_rate(arrivals: pd.DataFrame, window_minutes: float | None = None) -> float:
    """Mean arrivals per minute: cases / window (first to last arrival unless given)."""
    if window_minutes is None:
        created = arrivals["created_at"]
        window_minutes = (created.max() - created.min()) / pd.Timedelta(minutes=1)
    if not window_minutes or window_minutes <= 0:
        raise ValueError("the arrivals span no time: pass window_minutes to set the arrival rate")
    return len(arrivals) / float(window_minutes)


def replay(arrivals: pd.DataFrame, priority: np.ndarray, team: Team, goals_hours: dict[str, float],
           aging_points_per_goal: float, policy: str = "priority", *, aging_cap_points: float = math.inf,
           window_minutes: float | None = None, drain_hours: float | None = None) -> pd.DataFrame:
    """Replay the arrivals through the team; one row per case, in the order of `arrivals`.

    Args:
        arrivals: report_id, created_at (UTC), category, family, severity, valid (one row per case).
        priority: base priority per row of `arrivals` (model, baseline or oracle).
        team: capacity share and handle time.
        goals_hours: response-time goal per category, hours.
        aging_points_per_goal: points a case gains per goal waited.
        aging_cap_points: the most points aging adds (the live queue's QueuePolicy.aging_cap_points;
            the default, no cap, is not the live queue's policy: pass it).
        policy: "priority" (the live queue's rule) or "fifo".
        window_minutes: the window the mean arrival rate is measured over (default first to last arrival).
        drain_hours: stop this long after the last arrival (default: run until every case is picked).

    Returns:
        report_id, picked_at, time_to_action (minutes), goal_missed, picked, pick_seq (0-based order of picks).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if aging_points_per_goal < 0 or aging_cap_points < 0:
        raise ValueError("aging_points_per_goal and aging_cap_points must not be negative")
    missing = [c for c in ("report_id", "created_at", "category") if c not in arrivals.columns]
    if missing:
        raise ValueError(f"arrivals lacks columns {missing}")
    if arrivals["report_id"].duplicated().any():
        raise ValueError("arrivals has duplicate report_id values")
    unknown = sorted(set(arrivals["category"]) - set(goals_hours))
    if unknown:
        raise ValueError(f"no response-time goal for categories {unknown}")
    base = np.asarray(priority, dtype=float)
    if base.shape != (len(arrivals),) or not np.isfinite(base).all():
        raise ValueError("priority needs one finite value per row of arrivals")
    n = len(arrivals)
    if n == 0:
        raise ValueError("no arrivals to replay")
    t0 = arrivals["created_at"].min()
    opened_ns = (arrivals["created_at"] - t0).to_numpy().astype("timedelta64[ns]").astype(np.int64)
    opened = opened_ns / 1e9  # seconds, exactly as (created_at - t0) / 1 s
    goal_h = arrivals["category"].map(goals_hours).to_numpy(float)
    id_rank = _ranks(arrivals["report_id"].to_numpy(object))
    staff = staffing(team, arrival_rate(arrivals, window_minutes))
    stop = None if drain_hours is None else int(opened_ns.max()) + round(drain_hours * 3600e9)

    if policy == "fifo":
        queue = _FifoQueue(opened, id_rank)
    else:
        queue = _AgingQueue(base, opened, goal_h, id_rank, float(aging_points_per_goal), float(aging_cap_points))
    picked, seq = _run(opened_ns, id_rank, queue, staff, stop)

    done = seq >= 0
    acted = np.where(done, picked, opened_ns.max() if stop is None else stop)
    deadline = opened_ns + np.round(goal_h * 3600e9).astype(np.int64)
    return pd.DataFrame({
        "report_id": arrivals["report_id"].to_numpy(),
        "picked_at": (t0 + pd.to_timedelta(picked, unit="ns")).where(done, pd.NaT),
        "time_to_action": (acted - opened_ns) / 60e9,
        "goal_missed": acted > deadline,
        "picked": done,
        "pick_seq": pd.Series(seq, dtype="Int64").mask(~done).array,
    })


def _run(opened_ns: np.ndarray, id_rank: np.ndarray, queue, staff: Staffing, stop: int | None):
    """The event loop in integer nanoseconds: investigators' free times in a heap; arrivals admitted
    up to each pick time. Returns pick times (ns, 0 when not picked) and pick sequence (-1 when not picked)."""
    n = len(opened_ns)
    opened = [int(x) for x in opened_ns]
    arrival_order = [int(i) for i in np.lexsort((id_rank, opened_ns))]
    handle = round(staff.minutes_per_case * 60e9)
    free = [opened[arrival_order[0]]] * staff.investigators
    picked = np.zeros(n, dtype=np.int64)
    seq = np.full(n, -1, dtype=int)
    nxt, clock = 0, 0
    for k in range(n):
        # An investigator idle since before the last pick joins at the current time, never earlier:
        # the waiting set may already hold cases that arrived after they became free.
        t = max(heapq.heappop(free), clock)
        if not queue and t < opened[arrival_order[nxt]]:
            t = opened[arrival_order[nxt]]  # idle until the next case arrives
        clock = t
        if stop is not None and t > stop:
            break
        while nxt < n and opened[arrival_order[nxt]] <= t:
            queue.push(arrival_order[nxt])
            nxt += 1
        i = queue.pop_best(t / 1e9)
        picked[i], seq[i] = t, k
        heapq.heappush(free, t + handle)
    return picked, seq


class _FifoQueue:
    """Arrival order: created_at, then report_id."""

    def __init__(self, opened: np.ndarray, id_rank: np.ndarray):
        self._opened, self._id = opened, id_rank
        self._heap: list[tuple[float, int, int]] = []

    def __bool__(self) -> bool:
        return bool(self._heap)

    def push(self, i: int) -> None:
        heapq.heappush(self._heap, (float(self._opened[i]), int(self._id[i]), i))

    def pop_best(self, now: float) -> int:
        return heapq.heappop(self._heap)[2]


class _AgingQueue:
    """The live queue's order, with two heaps per distinct goal: cases still aging, and capped ones.

    Within one goal every aging case gains points at the same rate, so their order by intercept
    (base - slope x opened) never changes; every capped case sits at base + cap, so their order by
    base never changes; and cases of one goal reach the cap in arrival order (a deque per goal says
    which to move next). Only the heads of the heaps (plus near-ties the rounding could reorder) are
    compared at pick time, with rank_cases' exact key.
    """

    def __init__(self, base: np.ndarray, opened: np.ndarray, goal_h: np.ndarray, id_rank: np.ndarray, aging: float,
                 cap: float = math.inf):
        self._base, self._opened, self._goal_h, self._id, self._aging, self._cap = base, opened, goal_h, id_rank, aging, cap
        self._deadline = opened + goal_h * 3600.0
        self._intercept = base - aging * opened / (goal_h * 3600.0)
        reaches_cap = aging > 0 and math.isfinite(cap)
        self._cap_at = opened + (cap / aging) * goal_h * 3600.0 if reaches_cap else np.full(len(base), math.inf)
        self._aging_heaps: dict[float, list[tuple[float, float, int, int]]] = {}
        self._capped_heaps: dict[float, list[tuple[float, float, int, int]]] = {}
        self._arrived: dict[float, deque[int]] = {}
        self._capped = np.zeros(len(base), dtype=bool)
        self._done = np.zeros(len(base), dtype=bool)
        self._size = 0

    def __bool__(self) -> bool:
        return self._size > 0

    def push(self, i: int) -> None:
        goal = float(self._goal_h[i])
        entry = (-float(self._intercept[i]), float(self._deadline[i]), int(self._id[i]), i)
        heapq.heappush(self._aging_heaps.setdefault(goal, []), entry)
        self._capped_heaps.setdefault(goal, [])
        self._arrived.setdefault(goal, deque()).append(i)
        self._size += 1

    def _move_capped(self, now: float) -> None:
        """Cases whose aging reached the cap by `now` leave the aging heap (lazily) for the capped one."""
        for goal, arrived in self._arrived.items():
            while arrived and self._cap_at[arrived[0]] <= now:
                i = arrived.popleft()
                if not self._done[i]:
                    self._capped[i] = True
                    entry = (-float(self._base[i]), float(self._deadline[i]), int(self._id[i]), i)
                    heapq.heappush(self._capped_heaps[goal], entry)

    def pop_best(self, now: float) -> int:
        self._move_capped(now)
        candidates: list[tuple[list, tuple]] = []
        done, capped = self._done, self._capped
        heaps = [(h, True) for h in self._aging_heaps.values()] + [(h, False) for h in self._capped_heaps.values()]
        for heap, aging in heaps:
            limit = None
            while heap and (limit is None or heap[0][0] <= limit):
                entry = heapq.heappop(heap)
                if done[entry[3]] or (aging and capped[entry[3]]):
                    continue  # stale: picked already, or (aging heap) moved to the capped heap
                limit = entry[0] + TIE_TOLERANCE if limit is None else limit
                candidates.append((heap, entry))
        idx = np.array([entry[3] for _, entry in candidates])
        aged = self._aging * np.maximum(now - self._opened[idx], 0) / (self._goal_h[idx] * 3600.0)
        eff = np.round(self._base[idx] + np.minimum(aged, self._cap), ROUND_DECIMALS)
        best = min(range(len(idx)), key=lambda j: (-eff[j], self._deadline[idx[j]], self._id[idx[j]]))
        for j, (heap, entry) in enumerate(candidates):
            if j != best:
                heapq.heappush(heap, entry)
        self._done[idx[best]] = True
        self._size -= 1
        return int(idx[best])


def _ranks(ids: np.ndarray) -> np.ndarray:
    """Each id's position in sorted order (ids are unique), so integer comparison equals string comparison."""
    order = np.argsort(ids.astype(str), kind="stable")
    ranks = np.empty(len(ids), dtype=int)
    ranks[order] = np.arange(len(ids))
    return ranks


SUMMARY_COLUMNS: tuple[str, ...] = ("family", "severity", "cases", "mean_minutes", "p90_minutes",
                                    "goal_missed_share", "not_picked")


def summarise(result: pd.DataFrame, arrivals: pd.DataFrame) -> pd.DataFrame:
    """Valid cases only: per family x severity, per severity over all families, and one "all" row.

    Columns: family, severity, cases, mean_minutes, p90_minutes (time to action),
    goal_missed_share, not_picked (cases still waiting at the stop, counted at the stop).
    """
    cases = arrivals[["report_id", "family", "severity", "valid"]].merge(
        result, on="report_id", how="inner", validate="one_to_one")
    cases = cases[cases["valid"].fillna(False).astype(bool)]
    rows = []
    for fam in (*V.FAMILIES, "all"):
        for sev in (*V.SEVERITIES, "all"):
            m = np.ones(len(cases), bool)
            if fam != "all":
                m &= (cases["family"] == fam).to_numpy()
            if sev != "all":
                m &= (cases["severity"] == sev).fillna(False).to_numpy(bool)
            if sev == "all" and fam != "all" or not m.any():
                continue
            rows.append(_row(fam, sev, cases[m]))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _row(family: str, severity: str, cases: pd.DataFrame) -> dict:
    minutes = cases["time_to_action"].to_numpy(float)
    return {"family": family, "severity": severity, "cases": len(cases), "mean_minutes": float(minutes.mean()),
            "p90_minutes": float(np.percentile(minutes, 90)),
            "goal_missed_share": float(cases["goal_missed"].mean()), "not_picked": int((~cases["picked"]).sum())}


def window_arrivals(tables: dict[str, pd.DataFrame], last_share: float = 0.2) -> pd.DataFrame:
    """The last `last_share` of reports by (created_at, report_id) as replay arrivals.

    valid and severity come from the outcomes table; a report without an outcome (still
    unresolved when the data ends) still arrives and takes an investigator's time, but counts
    as not valid (severity empty), so summaries leave it out.
    """
    reports = tables["reports"].sort_values(["created_at", "report_id"], kind="stable")
    window = reports.iloc[round(len(reports) * (1.0 - last_share)):]
    out = window[["report_id", "created_at", "category"]].merge(
        tables["outcomes"][["report_id", "valid", "severity"]], on="report_id", how="left", validate="one_to_one")
    out["family"] = out["category"].map(V.CATEGORY_FAMILY)
    out["valid"] = out["valid"].fillna(False).astype(bool)
    return out[list(ARRIVAL_COLUMNS)].reset_index(drop=True)


def oracle_priority(truth_reports: pd.DataFrame, report_ids: pd.Series) -> np.ndarray:
    """100 x true P(valid) x expected severity weight (training.scoring.SEVERITY_WEIGHTS), per report id."""
    truth = truth_reports.set_index("report_id").loc[list(report_ids)]
    weights = np.array([SEVERITY_WEIGHTS[s] for s in V.SEVERITIES])
    expected = truth[[f"p_severity_{s}" for s in V.SEVERITIES]].to_numpy(float) @ weights
    return 100.0 * truth["p_valid"].to_numpy(float) * expected
