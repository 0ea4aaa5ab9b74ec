"""Queue.ranked reads the open cases through each store's fast path (SQLite: raw driver tuples; PostgreSQL:
COPY parsed by pyarrow). Both must give exactly what the plain SQLAlchemy read gives, ranked the same way."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from benchmarks.queue_bench import fill_cases
from policy.file import load_queue_policy
from policy.queue import rank_cases
from serving.queue.cases import Queue
from serving.store import tables as T
from serving.store.db import reading, writing

NOW = datetime(2026, 11, 21, 12, 0, 0, 123456, tzinfo=UTC)


def _reference(engine, qp, family: str | None = None):
    """Open cases (and expired claims) read the plain way, with full type processing, then ranked."""
    c = T.cases.c
    with reading(engine) as conn:
        rows = conn.execute(select(c.case_id, c.tier, c.base_priority, c.opened_at, c.goal_hours, c.status,
                                   c.claim_expires_at, c.family)).all()
    rows = [r for r in rows if (r.status == "open" or (r.status == "claimed" and r.claim_expires_at <= NOW))
            and (family is None or r.family == family)]
    ids = np.asarray([r.case_id for r in rows], dtype=str)
    order, eff = rank_cases(ids, np.asarray([r.tier for r in rows]), np.asarray([r.base_priority for r in rows]),
                            np.asarray([r.opened_at.timestamp() for r in rows]),
                            np.asarray([r.goal_hours for r in rows]), NOW.timestamp(), qp)
    return ids[order].tolist(), eff[order]


@pytest.mark.parametrize("family", [None, "logistics"])
def test_ranked_reads_the_same_cases_and_priorities_as_a_plain_query(engine, family):
    qp = load_queue_policy()
    fill_cases(engine, 600, seed=3, now=NOW)
    c = T.cases.c
    with writing(engine) as conn:  # a claim that expired (back in the queue) and one still held (not)
        ids = conn.execute(select(c.case_id).where(c.status == "open").order_by(c.case_id).limit(2)).scalars().all()
        conn.execute(update(T.cases).where(c.case_id == ids[0]).values(status="claimed", claimed_by="x",
                                                                           claim_expires_at=NOW - timedelta(minutes=1)))
        conn.execute(update(T.cases).where(c.case_id == ids[1]).values(status="claimed", claimed_by="x",
                                                                           claim_expires_at=NOW + timedelta(minutes=5)))
    ranked = Queue(engine, qp, ledger=None).ranked(NOW, family=family)
    want_ids, want_eff = _reference(engine, qp, family)
    assert ranked["case_id"].tolist() == want_ids
    assert np.allclose(ranked["effective_priority"].to_numpy(), want_eff, rtol=0, atol=1e-9)
    assert ids[0] in want_ids or family is not None
    assert ids[1] not in ranked["case_id"].tolist()


def test_ranked_on_an_empty_store_is_an_empty_frame(engine):
    ranked = Queue(engine, load_queue_policy(), ledger=None).ranked(NOW)
    assert ranked.empty and list(ranked.columns) == ["case_id", "tier", "effective_priority"]
