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
    assert ranked.empty and list(ranked.columns) == ["case_id", "tier", "effective_priority", "deadline_s"]


def test_one_case_with_a_million_character_id_keeps_ranking_small_and_in_order(engine):
    """Issue 15, defect 1: ranking padded every id to the longest (numpy fixed-width strings), so one id of
    1 MB made GET /queue and claims run out of memory. The id goes straight into the store (the API caps ids:
    this is what a store written before the cap may hold)."""
    import tracemalloc

    qp = load_queue_policy()
    fill_cases(engine, 1_000, seed=5, now=NOW)
    # SQLite stores any length; PostgreSQL refuses more than the column's length, so there the longest it holds
    length = 1_000_000 if engine.dialect.name == "sqlite" else T.cases.c.case_id.type.length
    long_id = "case-" + "x" * (length - 5)
    with writing(engine) as conn:
        conn.execute(T.cases.insert().values(
            case_id=long_id, kind="report", opened_at=NOW - timedelta(hours=2), subject_id="s", family="behavioral",
            category="harassment", deadline_at=NOW - timedelta(hours=1), goal_hours=1.0, base_priority=50.0, tier=0,
            status="open", version=0))
    queue = Queue(engine, qp, ledger=None)
    tracemalloc.start()
    try:
        ranked = queue.ranked(NOW)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, f"ranking 1,001 cases peaked at {peak / 2**20:.0f} MB"
    c = T.cases.c
    with reading(engine) as conn:
        rows = conn.execute(select(c.case_id, c.tier, c.base_priority, c.opened_at, c.goal_hours)
                            .where(c.status == "open")).all()
    key = {r.case_id: r for r in rows}
    eff = dict(zip(ranked["case_id"], ranked["effective_priority"]))
    want = sorted(key, key=lambda i: (-key[i].tier, -eff[i],
                                      key[i].opened_at.timestamp() + key[i].goal_hours * 3600, i))
    assert ranked["case_id"].tolist() == want and long_id in want


def test_ties_are_broken_by_case_id_in_code_point_order_as_before():
    """The integer ranks that replace the padded ids order ties exactly as numpy's strings did."""
    from policy.queue import id_ranks, order_cases

    ids = ["case-b", "case-a", "case-ä", "case-A", "case-a1", "case-", "case-\U0001f600", "case-a"]
    zeros = np.zeros(len(ids))
    want = order_cases(np.asarray(ids, dtype=str), zeros, zeros, zeros)
    assert order_cases(id_ranks(np.asarray(ids, dtype=object)), zeros, zeros, zeros).tolist() == want.tolist()


def test_pages_of_the_queue_follow_each_other_in_rank_order_to_the_last(engine):
    """Issue 15, defect 7: GET /queue pages by the last case's rank key; the pages of an unchanged queue are
    the ranking, each case once, and the last page has no key."""
    from serving.queue.cases import RankKey

    fill_cases(engine, 230, seed=4, now=NOW)
    queue = Queue(engine, load_queue_policy(), ledger=None)
    want = queue.ranked(NOW)["case_id"].tolist()
    seen, after = [], None
    while True:
        items, after = queue.page(NOW, 50, after=after)
        seen += [c["case_id"] for c in items]
        if after is None:
            break
        assert isinstance(after, RankKey) and after.case_id == seen[-1]
    assert seen == want and len(items) == 30


def test_a_page_continues_after_its_key_though_cases_above_it_were_claimed(engine):
    fill_cases(engine, 120, seed=6, now=NOW)
    queue = Queue(engine, load_queue_policy(), ledger=None)
    want = queue.ranked(NOW)["case_id"].tolist()
    first, after = queue.page(NOW, 40)
    c = T.cases.c
    with writing(engine) as conn:  # the first page's cases are taken meanwhile: an offset would skip 40
        conn.execute(update(T.cases).where(c.case_id.in_([x["case_id"] for x in first]))
                     .values(status="claimed", claimed_by="x", claim_expires_at=NOW + timedelta(minutes=5)))
    second, _ = queue.page(NOW, 40, after=after)
    assert [x["case_id"] for x in second] == want[40:80]


@pytest.mark.parametrize("limit", [1, 7, 50])
def test_every_page_is_exactly_the_ranking_read_in_full(engine, limit):
    """Queue.page reads only the cases that can reach the page (bounded by the aging cap); it must give the
    same cases, in the same order, as ranking every open case, for the first page and the pages after it."""
    fill_cases(engine, 3_000, seed=9, now=NOW)
    queue = Queue(engine, load_queue_policy(), ledger=None)
    for family in (None, "fraud"):
        want = queue.ranked(NOW, family=family)["case_id"].tolist()
        seen, after = [], None
        for _ in range(4):
            items, after = queue.page(NOW, limit, family=family, after=after)
            seen += [c["case_id"] for c in items]
        assert seen == want[:len(seen)] and len(seen) == min(4 * limit, len(want))
