"""The queue's backlog per family, as /metrics shows it: unresolved cases, the oldest, goals missed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert

from serving.queue.backlog import backlog
from serving.store import tables as T

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def case(case_id: str, family: str, opened_hours_ago: float, goal_hours: float, status: str) -> dict:
    opened = NOW - timedelta(hours=opened_hours_ago)
    return {"case_id": case_id, "kind": "report", "opened_at": opened, "subject_id": "a1", "family": family,
            "category": "spam", "deadline_at": opened + timedelta(hours=goal_hours), "goal_hours": goal_hours,
            "base_priority": 10.0, "tier": 1, "status": status, "claimed_by": None, "claim_expires_at": None,
            "version": 1, "merged_into": None}


def test_backlog_counts_unresolved_cases_per_family_with_the_oldest_and_the_goals_missed(engine):
    with engine.begin() as conn:
        conn.execute(insert(T.cases), [
            case("c1", "behavioral", 5, 1, "open"), case("c2", "behavioral", 0.5, 1, "claimed"),
            case("c3", "behavioral", 50, 1, "resolved"), case("c4", "logistics", 2, 72, "open")])
    rows = {row.family: row for row in backlog(engine, NOW)}
    assert set(rows) == {"behavioral", "logistics"}
    assert (rows["behavioral"].cases, rows["behavioral"].past_goal) == (2, 1)
    assert rows["behavioral"].oldest_seconds == 5 * 3600
    assert (rows["logistics"].cases, rows["logistics"].past_goal, rows["logistics"].oldest_seconds) == (1, 0, 7200)
