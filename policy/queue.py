"""The queue's rules as plain functions of data: response-time goals, aging, rules-only priority, ranking.

Everything a policy person may change is read from the `response_time_goals_hours`,
`queue` and `rules_priority` sections of policy/policy.yaml. Ranking is a pure
function of the open cases and `now`: the same cases at the same time always
come out in the same order.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import yaml

from features import vocabulary as V
from policy.penalty import PolicyError
from policy.spikes import REQUIRED_COLUMNS, SpikeConfig, detect_spikes

ROUND_DECIMALS = 6  # effective priorities are compared at this precision
ALERT_LOOKBACK = pd.Timedelta(days=1)  # how far back an arriving report looks for a burst it completes
ALERT_GROUP_COLUMNS = ("report_id", "alert_id", "joined_at")


@dataclass(frozen=True)
class QueuePolicy:
    goals_hours: dict[str, float]
    aging_points_per_goal: float
    aging_cap_points: float  # math.inf when the policy file sets no cap
    claim_timeout_minutes: float
    alert_tier: int
    sweep_seconds: float
    reporter_weight: dict[str, float]
    category_severity: dict[str, float]
    record_step: float
    record_cap: int
    spikes: dict
    monitors: dict
    monitor_every_minutes: float

    def alert_groups(self, reports: pd.DataFrame) -> pd.DataFrame:
        """The alert cases the live queue would have opened had `reports` arrived one by one at their
        created_at: which report joined which alert case, and when.

        Streams as serving.queue.intake.Triage.detect_spikes does after each intake: when a report arrives,
        detect_spikes (this policy's `spikes` thresholds) runs over the stored reports about its subject
        created since one lookback before it, and every report of each alert found joins that alert's
        case (`alert-<key>`, Queue.open_alert's case id) unless it already joined one. A report that
        was waiting before the alert opened joins at the alert's opening; one arriving into a running
        burst joins when it arrives. Only reports about a subject with an alert over the whole frame are
        streamed (an alert never appears in a prefix of the reports without one in the whole).

        reports: report_id, created_at (tz-aware), subject_id, show_id, reporter_id, category; the
            reporter columns that only decide an alert's verdict (reporter_age_days, reporter_accuracy,
            reporter_past_resolved, reporter_created_at) are read as unknown when absent.
        Returns: report_id, alert_id, joined_at, one row per report that joined an alert, by joined_at.
        """
        config = SpikeConfig.from_dict(self.spikes)
        frame = reports.sort_values(["created_at", "report_id"], kind="stable").reset_index(drop=True)
        for column in REQUIRED_COLUMNS:
            if column not in frame.columns:
                frame[column] = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]") \
                    if column == "reporter_created_at" else np.nan
        subjects = {a.subject_id for a in detect_spikes(frame, config) if a.scope == "subject"}
        lookback = max(pd.Timedelta(minutes=config.window_minutes), ALERT_LOOKBACK)
        joined: dict[str, tuple[str, pd.Timestamp]] = {}
        span = pd.Timedelta(minutes=config.window_minutes) + pd.Timedelta(seconds=1)
        for _, rows in frame[frame["subject_id"].isin(subjects)].groupby("subject_id", sort=True):
            created = rows["created_at"]
            # A report joins nothing, and changes nothing, unless its window could hold min_reports reports.
            busy = np.arange(len(rows)) + 1 - np.searchsorted(created.to_numpy(), (created - span).to_numpy(),
                                                              side="right") >= config.min_reports
            for k in np.flatnonzero(busy):
                now = created.iloc[k]
                recent = rows.iloc[: k + 1]
                recent = recent[recent["created_at"] >= now - lookback]
                if len(recent) < config.min_reports:
                    continue
                for alert in detect_spikes(recent, config):
                    for report_id in alert.report_ids:
                        joined.setdefault(report_id, (f"alert-{alert.key}", now))
        out = pd.DataFrame([(r, a, t) for r, (a, t) in joined.items()], columns=list(ALERT_GROUP_COLUMNS))
        return out.sort_values(["joined_at", "report_id"], kind="stable").reset_index(drop=True)


def parse_queue_policy(text: str) -> QueuePolicy:
    raw = yaml.safe_load(text)
    goals = {c: float(h) for c, h in raw["response_time_goals_hours"].items()}
    missing = [c for c in V.CATEGORIES if c not in goals]
    if missing or any(h <= 0 for h in goals.values()):
        raise PolicyError(f"response_time_goals_hours: every category needs a positive goal (missing: {missing})")
    rp, q = raw["rules_priority"], raw["queue"]
    monitors = dict(raw.get("monitors") or {})
    every = float(monitors.pop("schedule_minutes", 0))
    aging = float(q["aging_points_per_goal"])
    cap = math.inf if q.get("aging_cap_points") is None else float(q["aging_cap_points"])
    if aging < 0 or cap < 0:
        raise PolicyError("queue: aging_points_per_goal and aging_cap_points must not be negative")
    return QueuePolicy(
        goals_hours=goals,
        aging_points_per_goal=aging,
        aging_cap_points=cap,
        claim_timeout_minutes=float(q["claim_timeout_minutes"]),
        alert_tier=int(q["alert_tier"]),
        sweep_seconds=float(q["sweep_seconds"]),
        reporter_weight={k: float(v) for k, v in rp["reporter_weight"].items()},
        category_severity={k: float(v) for k, v in rp["category_severity"].items()},
        record_step=float(rp["record_step"]),
        record_cap=int(rp["record_cap"]),
        spikes=dict(raw.get("spikes") or {}),
        monitors=monitors,
        monitor_every_minutes=every,
    )



def rules_priority_from_weights(
    reporter_type: pd.Series, category: pd.Series, record: np.ndarray,
    reporter_weight: Mapping[str, float], category_severity: Mapping[str, float],
    record_step: float, record_cap: int,
) -> np.ndarray:
    """0-100 without any model: reporter weight x category severity x (1 + step x capped violation record),
    scaled by its maximum."""
    reporter = pd.Series(reporter_type).astype(object).map(reporter_weight).to_numpy(float)
    severity = pd.Series(category).astype(object).map(category_severity).to_numpy(float)
    factor = 1.0 + record_step * np.minimum(np.asarray(record, float), record_cap)
    top = 1.0 + record_step * record_cap
    return np.round(100.0 * reporter * severity * factor / top, 4)


def subject_record(features: pd.DataFrame) -> np.ndarray:
    """The subject's violations in the last 180 days, all families together: the record the rules count."""
    return sum(features[f"subject_violations_{fam}_180d"].to_numpy(float) for fam in V.FAMILIES)


def rules_priority(reports: pd.DataFrame, features: pd.DataFrame, qp: QueuePolicy) -> np.ndarray:
    """The queue's rules-only priority of each report (reports need reporter_type and category), with the
    policy's weights: what the live queue scores by when the models are away, and training's rules baseline."""
    return rules_priority_from_weights(reports["reporter_type"], reports["category"], subject_record(features),
                                       qp.reporter_weight, qp.category_severity, qp.record_step, qp.record_cap)


def aged_priority(base: np.ndarray, waited_seconds: np.ndarray, goal_hours: np.ndarray, aging_points_per_goal: float,
                  aging_cap_points: float) -> np.ndarray:
    """Base priority plus capped aging, rounded to ROUND_DECIMALS: the key the queue ranks by.

    `aging_points_per_goal` for every response-time goal waited, at most `aging_cap_points` in all. The cap
    keeps aging a tie-breaker between cases of similar priority: a case that has waited overtakes fresh ones up
    to `aging_cap_points` above it, never a fresh case far likelier to be harmful. Uncapped, aging grew with the
    backlog until it decided the order by itself (first in, first out among old cases) whenever the team fell
    behind. Nothing waits forever while the team's capacity exceeds arrivals: the queue then empties again and
    again, and every case is reached. Rounding keeps float noise from reordering cases of equal priority.
    """
    aged = aging_points_per_goal * np.maximum(waited_seconds, 0) / (goal_hours * 3600.0)
    return np.round(base + np.minimum(aged, aging_cap_points), ROUND_DECIMALS)


def effective_priority(base: np.ndarray, waited_seconds: np.ndarray, goal_hours: np.ndarray,
                       qp: QueuePolicy) -> np.ndarray:
    """aged_priority with this policy's aging rate and cap."""
    return aged_priority(base, waited_seconds, goal_hours, qp.aging_points_per_goal, qp.aging_cap_points)


def order_cases(case_ids: np.ndarray, tier: np.ndarray, effective: np.ndarray, deadline: np.ndarray) -> np.ndarray:
    """Rank order (indices): tier first, then effective priority, then the earlier deadline, then case id, so
    equal cases always come out in the same order. `case_ids` may be the ids or any integers ranking them alike
    (id_ranks: ids of any length cost no more than short ones)."""
    return np.lexsort((case_ids, deadline, -effective, -tier))


def id_ranks(case_ids) -> np.ndarray:
    """Each id's position in the ids' sorted order (code point by code point, as str comparison and numpy's
    fixed-width strings both sort), as integers that order_cases ranks exactly as it would the ids.

    Not `np.asarray(ids, str)`: a fixed-width array pads every id to the longest, so one id of a million
    characters made ranking 100,000 cases allocate 400 GB (issue 15, defect 1). Equal ids get increasing
    ranks in input order, which is where a stable sort on the ids themselves would put them too.
    """
    ids = case_ids.tolist() if isinstance(case_ids, np.ndarray) else list(case_ids)
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[sorted(range(len(ids)), key=ids.__getitem__)] = np.arange(len(ids))
    return ranks


def rank_cases(case_ids: np.ndarray, tier: np.ndarray, base: np.ndarray, opened_s: np.ndarray,
               goal_hours: np.ndarray, now_s: float, qp: QueuePolicy) -> tuple[np.ndarray, np.ndarray]:
    """Order (indices) and effective priorities of open cases at `now_s` (order_cases of effective_priority)."""
    eff = effective_priority(base, now_s - opened_s, goal_hours, qp)
    integers = isinstance(case_ids, np.ndarray) and case_ids.dtype.kind in "iu"
    codes = case_ids if integers else id_ranks(case_ids)
    return order_cases(codes, tier, eff, opened_s + goal_hours * 3600.0), eff
