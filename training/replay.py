"""Replaying a window of reports through a simulated team of investigators.

A deterministic discrete-event replay: reports arrive at their `created_at`, each as a case of its
own unless the live spike detector put it in an alert case (below); whenever an investigator is
free they take the best waiting case under the policy at that moment and are busy for a fixed time
per case. It answers "how long would reports have waited under this ordering and this much staff",
so base priorities from a model, a baseline and the oracle can be compared on the same arrivals.

Alert cases (report spikes), as the live queue makes them (serving.queue.intake / Queue.open_alert), when
`alerts` (QueuePolicy.alert_groups: report_id, alert_id, joined_at) is given:
    opening     an alert case opens when its first report joins (the arrival that made the
                detector find the spike); it ranks in the tier above every ordinary case, is aged
                from its first report's created_at (the live window start) against the shortest
                goal among the reports it opened with, and its base priority is the highest of the
                reports that have joined it so far.
    merging     a report of the alert still waiting as an ordinary case when it joins (it arrived
                before the detector fired) leaves the queue for the alert case; one already picked
                stays acted on when it was (it still counts towards the alert's base priority, as
                the live case_reports do). A report joining while the alert case waits is simply
                added to it.
    one pick    when an investigator picks the alert case every report in it is acted on at that
                moment, for ONE handle time.
    late        a report joining after the alert case was picked (the live queue adds it to that
                case whatever its state): while the case is still in the investigator's hands
                (before pick + the time per case) it takes no time of its own and is acted on when
                that handling ends (the live resolution gives every report of the case its
                outcome). After that the live queue adds it to a resolved case where nobody would
                see it; the replay does not count that as action and makes it an ordinary case of
                its own instead.
The grouping comes from the detector, which does not depend on the ordering, so it applies to every
policy alike, first in, first out included: the comparison stays fair.

The team model (exact):
    arrivals per minute  lambda = cases / window minutes (window: first to last arrival unless
                                  `window_minutes` is given); cases = reports outside alert cases
                                  + one per alert case (the work as the live queue presents it,
                                  whatever the ordering: the reports an ordering happens to pick
                                  before their alert opens, or after it was handled, are not counted,
                                  so every ordering gets the same team)
    team capacity        mu     = capacity_share x lambda              (cases the team finishes per minute)
    investigators        c      = mu x handle_minutes                  (fractional: `Team.investigators`)
    simulated as         k      = ceil(c) identical investigators, each busy k / mu minutes per case
                                  (= handle_minutes x k / c, never less than handle_minutes),
so the team's capacity is exactly mu while every pick still occupies one investigator for a
real stretch of time.

Policies (alert cases first under both, as the live tier rule has it):
    "priority"  the live queue's rule (policy.queue.rank_cases: tier 1 for alert cases, 0 for
                the rest): effective priority = base + min(aging_points_per_goal x goals waited,
                aging_cap_points), rounded to 6 decimals; ties by the earlier deadline (opened + goal),
                then case id (report_id for ordinary cases, alert_id for alert cases).
    "fifo"      arrival order: created_at (an alert case: its first report's), then the id.

Speed: while a case ages, its aging is linear in time with a slope that depends only on its goal
(aging_points_per_goal / goal); once it reaches the cap (at created + goal x cap / aging points per
goal) its effective priority is base + cap. So cases with the same goal that are both still
aging, or both capped, never change order among themselves, and cases of one goal reach the cap in
arrival order. Waiting cases are kept in two heaps per distinct goal: the aging ones keyed by the
time-free intercept base - slope x created, the capped ones by base; before each pick the cases
whose cap time has passed move from the first to the second (stale entries are skipped). A pick
compares only the heads of those heaps (at most two per distinct goal) at the pick time, using the
live queue's exact key. Near-ties that the 6-decimal rounding could reorder are resolved by also
evaluating every case within 1e-5 of its heap's head. Alert cases are few: each pick scans the
waiting ones. The clock runs in integer nanoseconds from the first arrival (so a pick is never
before its arrival by a rounding error); the ranking sees seconds as floats, as the live queue
does. 20k cases replay in about a third of a second.

End of the window: by default (`drain_hours=None`) the team keeps working after the last
arrival until every case is picked, so every time to action is real. With `drain_hours` the
replay stops that long after the last arrival; cases still waiting are not picked
(`picked` False, `picked_at` NaT) and their time to action is counted up to the stop (a lower
bound); `goal_missed` is exact for them whenever drain_hours is at least the longest goal.

The ranking key (aging, rounding, tie-breaks) is policy.queue's, the one the live queue ranks by; the goals
and the aging rate are plain arguments (the QueuePolicy's, at the call site).
"""
from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features import vocabulary as V
from policy.queue import aged_priority, order_cases
from training.scoring import SEVERITY_WEIGHTS

POLICIES: tuple[str, ...] = ("priority", "fifo")
ARRIVAL_COLUMNS: tuple[str, ...] = ("report_id", "created_at", "category", "family", "severity", "valid")
TIE_TOLERANCE = 1e-5  # intercept gap within which the 6-decimal rounding might reorder two cases


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


def arrival_rate(arrivals: pd.DataFrame, window_minutes: float | None = None,
                 alerts: pd.DataFrame | None = None) -> float:
    """Mean cases arriving per minute: cases / window (first to last arrival unless given).

    Cases are the reports outside alert cases plus one per alert case (`alerts` as for `replay`).
    """
    if window_minutes is None:
        created = arrivals["created_at"]
        window_minutes = (created.max() - created.min()) / pd.Timedelta(minutes=1)
    if not window_minutes or window_minutes <= 0:
        raise ValueError("the arrivals span no time: pass window_minutes to set the arrival rate")
    n = len(arrivals)
    if alerts is not None:
        member = alerts[alerts["report_id"].astype(str).isin(arrivals["report_id"].astype(str))]
        n += member["alert_id"].nunique() - len(member)
    return n / float(window_minutes)


def replay(arrivals: pd.DataFrame, priority: np.ndarray, team: Team, goals_hours: dict[str, float],
           aging_points_per_goal: float, policy: str = "priority", *, aging_cap_points: float = math.inf,
           window_minutes: float | None = None, drain_hours: float | None = None,
           alerts: pd.DataFrame | None = None) -> pd.DataFrame:
    """Replay the arrivals through the team; one row per report, in the order of `arrivals`.

    Args:
        arrivals: report_id, created_at (UTC), category, family, severity, valid (one row per report).
        priority: base priority per row of `arrivals` (model, baseline or oracle).
        team: capacity share and handle time.
        goals_hours: response-time goal per category, hours.
        aging_points_per_goal: points a case gains per goal waited.
        aging_cap_points: the most points aging adds (the live queue's QueuePolicy.aging_cap_points;
            the default, no cap, is not the live queue's policy: pass it).
        policy: "priority" (the live queue's rule) or "fifo".
        window_minutes: the window the mean arrival rate is measured over (default first to last arrival).
        drain_hours: stop this long after the last arrival (default: run until every case is picked).
        alerts: the live spike detector's alert cases (policy.queue.QueuePolicy.alert_groups):
            report_id, alert_id (the live case id), joined_at (when the report joined it: its arrival,
            or the alert's opening for one that arrived before); reports absent from it, or from
            `arrivals`, are in no alert. None: every report is its own case. The same grouping
            applies to every policy.

    Returns:
        report_id, picked_at (when acted on), time_to_action (minutes), goal_missed, picked,
        pick_seq (0-based order of the pick that acted on it; the reports of one alert case share one),
        alert_id (the alert case that acted on it; missing when it was acted on as its own case).
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
    opened_ns = _ns(arrivals["created_at"], t0)
    opened = opened_ns / 1e9  # seconds, exactly as (created_at - t0) / 1 s
    goal_h = arrivals["category"].map(goals_hours).to_numpy(float)
    id_rank = _ranks(arrivals["report_id"].to_numpy(object))
    staff = staffing(team, arrival_rate(arrivals, window_minutes, alerts))
    stop = None if drain_hours is None else int(opened_ns.max()) + round(drain_hours * 3600e9)
    group = _AlertGroups.of(alerts, arrivals, t0, opened_ns)

    if policy == "fifo":
        queue = _FifoQueue(opened, id_rank)
    else:
        queue = _AgingQueue(base, opened, goal_h, id_rank, float(aging_points_per_goal), float(aging_cap_points))
    cases = _AlertCases(group, base, opened, goal_h, policy, float(aging_points_per_goal), float(aging_cap_points))
    picked, seq, by_alert = _run(opened_ns, id_rank, queue, cases, staff, stop)

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
        "alert_id": np.where(by_alert >= 0, group.ids[np.maximum(by_alert, 0)] if len(group.ids) else None, None),
    })


def _ns(times: pd.Series, t0: pd.Timestamp) -> np.ndarray:
    """Integer nanoseconds since t0."""
    return (times - t0).to_numpy().astype("timedelta64[ns]").astype(np.int64)


@dataclass(frozen=True)
class _AlertGroups:
    """The grouping per arrival: alert number (-1: none) and join time (ns); alert ids and their id ranks."""

    alert: np.ndarray
    joined_ns: np.ndarray
    ids: np.ndarray
    id_rank: np.ndarray

    @classmethod
    def of(cls, alerts: pd.DataFrame | None, arrivals: pd.DataFrame, t0: pd.Timestamp,
           opened_ns: np.ndarray) -> _AlertGroups:
        n = len(arrivals)
        if alerts is None or not len(alerts):
            return cls(np.full(n, -1), np.zeros(n, np.int64), np.array([], object), np.array([], int))
        missing = [c for c in ("report_id", "alert_id", "joined_at") if c not in alerts.columns]
        if missing:
            raise ValueError(f"alerts lacks columns {missing}")
        if alerts["report_id"].duplicated().any():
            raise ValueError("alerts puts a report in more than one alert case")
        rows = pd.Series(np.arange(n), index=arrivals["report_id"].astype(str).to_numpy()).reindex(
            alerts["report_id"].astype(str).to_numpy())
        inside = rows.notna().to_numpy()
        rows = rows.to_numpy()[inside].astype(int)
        ids, codes = np.unique(alerts["alert_id"].to_numpy(object)[inside].astype(str), return_inverse=True)
        alert = np.full(n, -1)
        alert[rows] = codes
        joined = np.zeros(n, np.int64)
        joined[rows] = _ns(alerts["joined_at"][inside], t0)
        if (joined[rows] < opened_ns[rows]).any():
            raise ValueError("alerts has a report joining an alert before it arrived")
        return cls(alert, joined, ids.astype(object), np.arange(len(ids)))


def _run(opened_ns: np.ndarray, id_rank: np.ndarray, queue, cases: _AlertCases, staff: Staffing,
         stop: int | None):
    """The event loop in integer nanoseconds: investigators' free times in a heap; arrivals and alert
    joins applied up to each pick time. Returns per report the time it was acted on (ns, 0 when not),
    the pick sequence (-1 when not) and the alert case that acted on it (-1 when its own case did)."""
    n = len(opened_ns)
    group = cases.group
    handle = round(staff.minutes_per_case * 60e9)
    # Events: every arrival, and every alert join (arrival first when both fall on one instant).
    joins = np.flatnonzero(group.alert >= 0)
    times = np.concatenate([opened_ns, group.joined_ns[joins]])
    kinds = np.concatenate([np.zeros(n, int), np.ones(len(joins), int)])
    who = np.concatenate([np.arange(n), joins])
    order = np.lexsort((id_rank[who], kinds, times))
    events = [(int(times[e]), int(kinds[e]), int(who[e])) for e in order]
    picked = np.zeros(n, dtype=np.int64)
    seq = np.full(n, -1, dtype=int)
    by_alert = np.full(n, -1, dtype=int)
    state = _State(queue, cases, picked, seq, by_alert, handle)
    free = [events[0][0]] * staff.investigators
    nxt, clock, k = 0, 0, 0
    while True:
        # An investigator idle since before the last pick joins at the current time, never earlier:
        # the waiting set may already hold cases that arrived after they became free.
        t = max(heapq.heappop(free), clock)
        if stop is not None and t > stop:
            break
        nxt = state.apply(events, nxt, t)
        while not state.waiting() and nxt < len(events):
            t = max(t, events[nxt][0])  # idle until the next event brings a case
            if stop is not None and t > stop:
                break
            nxt = state.apply(events, nxt, t)
        if not state.waiting() or (stop is not None and t > stop):
            break
        clock = t
        state.pick(t, k)
        k += 1
        heapq.heappush(free, t + handle)
    state.apply(events, nxt, math.inf if stop is None else stop)  # joins into cases still being handled
    return picked, seq, by_alert


class _State:
    """What the event loop changes: the ordinary queue, the alert cases, and each report's outcome."""

    def __init__(self, queue, cases: _AlertCases, picked: np.ndarray, seq: np.ndarray, by_alert: np.ndarray,
                 handle: int):
        self.queue, self.cases, self.picked, self.seq, self.by_alert, self.handle = \
            queue, cases, picked, seq, by_alert, handle
        self.alert, self.joined = cases.group.alert, cases.group.joined_ns

    def waiting(self) -> bool:
        return bool(self.queue) or self.cases.any_waiting()

    def apply(self, events: list[tuple[int, int, int]], nxt: int, until: float) -> int:
        """Apply the events up to `until`; returns the index of the first one left."""
        while nxt < len(events) and events[nxt][0] <= until:
            at, kind, i = events[nxt]
            nxt += 1
            a = int(self.alert[i])
            if kind == 0:
                if a < 0 or self.joined[i] > at:
                    self.queue.push(i)  # its own case (one of an alert waits as such until the alert opens)
                continue
            self.cases.open(a, at)
            if self.seq[i] >= 0:  # picked as its own case before the alert opened: stays acted on then
                self.cases.add(a, i, at, acted=True)
                continue
            p = int(self.cases.picked_at[a])
            if p >= 0 and at >= p + self.handle:  # the live queue would bury it in a resolved case
                if not self.queue.holds(i):
                    self.queue.push(i)  # so it is a case of its own
                continue
            if self.queue.holds(i):
                self.queue.remove(i)  # merged into the alert case
            if p >= 0:  # joins a case in an investigator's hands: acted on when the handling ends
                self.picked[i], self.seq[i], self.by_alert[i] = p + self.handle, self.cases.pick_seq[a], a
            else:
                self.cases.add(a, i, at, acted=False)
        return nxt

    def pick(self, t: int, k: int) -> None:
        if self.cases.any_waiting():
            a = self.cases.pop_best(t / 1e9, t, k)
            for i in self.cases.members.pop(a):
                self.picked[i], self.seq[i], self.by_alert[i] = t, k, a
        else:
            i = self.queue.pop_best(t / 1e9)
            self.picked[i], self.seq[i] = t, k


class _AlertCases:
    """The alert cases: open (waiting), picked (in hand until pick + handle) or not yet opened.

    A handful at any time, so each pick scans the waiting ones with rank_cases' key (tier 1 for all).
    """

    def __init__(self, group: _AlertGroups, base: np.ndarray, opened: np.ndarray, goal_h: np.ndarray, policy: str,
                 aging: float, cap: float):
        self.group, self._report_base, self._policy, self._aging, self._cap = group, base, policy, aging, cap
        m = len(group.ids)
        inside = group.alert >= 0
        self._opened = np.full(m, math.inf)
        np.minimum.at(self._opened, group.alert[inside], opened[inside])  # the live window start
        self._goal_of_report = goal_h
        self._goal = np.full(m, math.inf)
        self._opened_ns = np.full(m, -1, dtype=np.int64)  # when it opened (the detector fired); -1: not yet
        self._base = np.full(m, -math.inf)
        self.picked_at = np.full(m, -1, dtype=np.int64)
        self.pick_seq = np.full(m, -1, dtype=int)
        self.members: dict[int, list[int]] = {}  # waiting alert cases -> reports to act on at the pick

    def any_waiting(self) -> bool:
        return bool(self.members)

    def open(self, a: int, at: int) -> None:
        """Alert a opens at `at` (ns) if it has not yet: the detector fired."""
        if self._opened_ns[a] < 0:
            self._opened_ns[a] = at
            self.members[a] = []

    def add(self, a: int, i: int, at: int, acted: bool) -> None:
        """Report i joins open alert a at `at`; one already acted on only counts towards its priority."""
        if self.picked_at[a] >= 0:
            return
        if at == self._opened_ns[a]:
            self._goal[a] = min(self._goal[a], self._goal_of_report[i])  # the goal is set when it opens
        self._base[a] = max(self._base[a], self._report_base[i])
        if not acted:
            self.members[a].append(i)

    def pop_best(self, now: float, t: int, k: int) -> int:
        waiting = list(self.members)
        opened = self._opened[waiting]
        if self._policy == "fifo":
            best = min(range(len(waiting)), key=lambda j: (opened[j], self.group.id_rank[waiting[j]]))
        else:
            goal = self._goal[waiting]
            eff = aged_priority(self._base[waiting], now - opened, goal, self._aging, self._cap)
            best = int(order_cases(self.group.id_rank[waiting], np.zeros(len(waiting)), eff,
                                   opened + goal * 3600.0)[0])
        a = waiting[best]
        self.picked_at[a], self.pick_seq[a] = t, k
        return a


class _FifoQueue:
    """Arrival order: created_at, then report_id. Removed cases (merged into an alert) are skipped lazily."""

    def __init__(self, opened: np.ndarray, id_rank: np.ndarray):
        self._opened, self._id = opened, id_rank
        self._heap: list[tuple[float, int, int]] = []
        self._in = np.zeros(len(opened), dtype=bool)
        self._size = 0

    def __bool__(self) -> bool:
        return self._size > 0

    def holds(self, i: int) -> bool:
        return bool(self._in[i])

    def push(self, i: int) -> None:
        heapq.heappush(self._heap, (float(self._opened[i]), int(self._id[i]), i))
        self._in[i] = True
        self._size += 1

    def remove(self, i: int) -> None:
        self._in[i] = False
        self._size -= 1

    def pop_best(self, now: float) -> int:
        while not self._in[self._heap[0][2]]:
            heapq.heappop(self._heap)
        i = heapq.heappop(self._heap)[2]
        self.remove(i)
        return i


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
        self._in = np.zeros(len(base), dtype=bool)
        self._size = 0

    def __bool__(self) -> bool:
        return self._size > 0

    def holds(self, i: int) -> bool:
        return bool(self._in[i])

    def remove(self, i: int) -> None:
        """Case i leaves the queue (merged into an alert case); its heap entries go stale."""
        self._done[i], self._in[i] = True, False
        self._size -= 1

    def push(self, i: int) -> None:
        goal = float(self._goal_h[i])
        entry = (-float(self._intercept[i]), float(self._deadline[i]), int(self._id[i]), i)
        heapq.heappush(self._aging_heaps.setdefault(goal, []), entry)
        self._capped_heaps.setdefault(goal, [])
        self._arrived.setdefault(goal, deque()).append(i)
        self._in[i] = True
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
        eff = aged_priority(self._base[idx], now - self._opened[idx], self._goal_h[idx], self._aging, self._cap)
        best = int(order_cases(self._id[idx], np.zeros(len(idx)), eff, self._deadline[idx])[0])
        for j, (heap, entry) in enumerate(candidates):
            if j != best:
                heapq.heappush(heap, entry)
        self.remove(int(idx[best]))
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
