"""The queue's rules as plain functions of data: response-time goals, aging, rules-only priority, ranking.

Everything a policy person may change is read from the `response_time_goals_hours`,
`queue` and `rules_priority` sections of serving/policy.yaml. Ranking is a pure
function of the open cases and `now`: the same cases at the same time always
come out in the same order.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from features import vocabulary as V
from serving.penalty import DEFAULT_POLICY, PolicyError


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


@lru_cache(maxsize=8)
def load_queue_policy(path: Path | None = None) -> QueuePolicy:
    path = Path(path or os.environ.get("DOCKET_POLICY_FILE") or DEFAULT_POLICY)
    return parse_queue_policy(path.read_text(encoding="utf-8"))


def rules_priority(reports: pd.DataFrame, features: pd.DataFrame, qp: QueuePolicy) -> np.ndarray:
    """0-100 without any model: reporter type x category severity x the subject's counting record."""
    reporter = reports["reporter_type"].map(qp.reporter_weight).to_numpy(float)
    severity = reports["category"].map(qp.category_severity).to_numpy(float)
    record = sum(features[f"subject_violations_{fam}_180d"].to_numpy(float) for fam in V.FAMILIES)
    factor = 1.0 + qp.record_step * np.minimum(record, qp.record_cap)
    top = 1.0 + qp.record_step * qp.record_cap
    return np.round(100.0 * reporter * severity * factor / top, 4)


def effective_priority(base: np.ndarray, waited_seconds: np.ndarray, goal_hours: np.ndarray,
                       qp: QueuePolicy) -> np.ndarray:
    """Base priority plus capped aging: `aging_points_per_goal` for every response-time goal waited,
    at most `aging_cap_points` in all.

    The cap keeps aging a tie-breaker between cases of similar priority: a case that has waited
    overtakes fresh ones up to `aging_cap_points` above it, never a fresh case far likelier to be
    harmful. Uncapped, aging grew with the backlog until it decided the order by itself (first in,
    first out among old cases) whenever the team fell behind. Nothing waits forever while the team's
    capacity exceeds arrivals: the queue then empties again and again, and every case is reached.
    """
    aged = qp.aging_points_per_goal * np.maximum(waited_seconds, 0) / (goal_hours * 3600.0)
    return base + np.minimum(aged, qp.aging_cap_points)


def rank_cases(case_ids: np.ndarray, tier: np.ndarray, base: np.ndarray, opened_s: np.ndarray,
               goal_hours: np.ndarray, now_s: float, qp: QueuePolicy) -> tuple[np.ndarray, np.ndarray]:
    """Order (indices) and effective priorities: tier first, then effective priority, then the earlier
    deadline, then case id, so equal cases always come out in the same order."""
    eff = np.round(effective_priority(base, now_s - opened_s, goal_hours, qp), 6)
    deadline = opened_s + goal_hours * 3600.0
    order = np.lexsort((case_ids, deadline, -eff, -tier))
    return order, eff
