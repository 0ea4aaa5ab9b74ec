"""The queue's backlog per family, for the service's metrics: how many cases wait, the oldest, the goals missed.

Read in one grouped query over unresolved cases (open or claimed) by the service's sweep (serving/service.py),
not per scrape, so a busy Prometheus cannot make the store work harder.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, case, func, select

from serving.store import tables as T
from serving.store.db import reading

UNRESOLVED = ("open", "claimed")


@dataclass(frozen=True)
class Backlog:
    family: str
    cases: int
    oldest_seconds: float  # since the oldest unresolved case opened (its report's created_at)
    past_goal: int  # unresolved cases whose response-time goal (deadline) has passed


def backlog(engine: Engine, now: datetime) -> list[Backlog]:
    c = T.cases
    query = (select(c.c.family, func.count(), func.min(c.c.opened_at),
                    func.sum(case((c.c.deadline_at < now, 1), else_=0)))
             .where(c.c.status.in_(UNRESOLVED)).group_by(c.c.family))
    with reading(engine) as conn:
        rows = conn.execute(query).all()
    # min() keeps the column's type, so `oldest` comes back as an aware datetime on SQLite and PostgreSQL alike
    return [Backlog(family, int(n), max((now - oldest).total_seconds(), 0.0), int(late or 0))
            for family, n, oldest, late in rows]
