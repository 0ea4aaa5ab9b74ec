"""A worker's live feed follows the store: after every batch its history answers like one built from the
store's tables, also across the snapshots it takes in the background."""
from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from features import vocabulary as V
from features.build import order_features, report_features
from features.contract import REPORTS
from features.history import History
from features.validate import validate_tables
from policy.file import load_policy
from serving.input_checks import records_frame
from serving.market.event_store import Market
from serving.market.events import check_batch, timeline
from serving.market.live_feed import LiveFeed
from serving.store import tables as T
from serving.store.db import insert_rows, next_seq, writing
from simulator.simulate import simulate


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    return validate_tables({k: v for k, v in simulate(300, seed=3, days=30).items() if not k.startswith("truth")})


def _store_reports(engine, records: list[dict]) -> None:
    """Reports as intake stores them (seq included), without the queue around them."""
    rows = records_frame([dict(r, created_at=pd.Timestamp(r["created_at"])) for r in records], REPORTS)
    with writing(engine) as conn:
        first = next_seq(conn, len(rows))
        insert_rows(conn, T.intake_reports, [
            {**{k: (v.to_pydatetime() if isinstance(v, pd.Timestamp) else (None if v is None or v != v else v))
                for k, v in r.items()},
             "family": V.family_of(r["category"]), "received_at": datetime.now(UTC), "received_by": "test",
             "evidence": None, "seq": first + i} for i, r in enumerate(rows.to_dict("records"))])


def _same(feed: LiveFeed, market: Market) -> None:
    _, tables = market.tables()
    full = History.from_tables(tables)
    live = feed.current()
    pd.testing.assert_frame_equal(report_features(tables["reports"], live), report_features(tables["reports"], full),
                                  check_exact=False, rtol=1e-12, atol=1e-9)
    pd.testing.assert_frame_equal(order_features(tables["orders"], live), order_features(tables["orders"], full),
                                  check_exact=False, rtol=1e-12, atol=1e-9)
    # The fulfilment rules' reads from memory: every order of a seller, as the store holds it.
    orders = tables["orders"]
    sellers = sorted(set(orders["seller_id"]))[::7] + ["never-seen"]
    by_id = lambda frame: frame.sort_values("order_id").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(by_id(feed.seller_orders(sellers)), by_id(orders[orders["seller_id"].isin(sellers)]))
    some = orders["order_id"].iloc[::13].tolist()
    assert feed.sellers_of(some + ["never-seen"]) == set(orders.loc[orders["order_id"].isin(some), "seller_id"])


def _ingest(engine, market: Market, chunk: list) -> None:
    body: dict[str, list] = {}
    for _, kind, record in chunk:
        body.setdefault(kind, []).append(record)
    reports = body.pop("reports", [])
    if body:
        market.ingest(check_batch(body, 10_000), actor="test", now=datetime.now(UTC))
    if reports:
        _store_reports(engine, reports)


def test_the_feed_follows_the_store_across_background_snapshots(engine, world):
    market = Market(engine, load_policy())
    events = timeline(world)
    chunks = [events[i:i + 200] for i in range(0, len(events), 200)]
    feed = LiveFeed(market, compact_rows=150)
    snapshots = 0
    while chunks:
        _ingest(engine, market, chunks.pop(0))
        _same(feed, market)
        if feed._next is not None and chunks:
            _ingest(engine, market, chunks.pop(0))  # arrives while the next snapshot is being built
            feed._next.result()
            snapshot = feed._snapshot
            _same(feed, market)  # swaps to the new snapshot, with what arrived meanwhile laid over it
            snapshots += feed._snapshot is not snapshot
    assert snapshots >= 2
    assert feed.seq == market.last_seq()


def test_changes_and_snapshots_keep_each_text_column_in_one_chunk(engine, world):
    """Concatenating Arrow columns chains chunks: a chunk per refresh, kept through every snapshot, cost
    memory no fresh worker holds (issue 15)."""
    market = Market(engine, load_policy())
    events = timeline(world)
    feed = LiveFeed(market, compact_rows=150)
    for i in range(0, min(len(events), 2_000), 20):
        _ingest(engine, market, events[i:i + 20])
        feed.current()
        if feed._next is not None:
            feed._next.result()
    feed.current()
    for frames in (feed._changes, feed._snapshot.tables):
        for name, frame in frames.items():
            for column in frame.columns:
                values = frame[column].array
                if isinstance(values, pd.arrays.ArrowExtensionArray):
                    assert values.__arrow_array__().num_chunks <= 1, (name, column)
