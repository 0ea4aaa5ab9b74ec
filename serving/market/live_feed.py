"""A worker's history, kept current from the store: read whole at start, then tailed before every use.

Each worker reads the store's tables once (serving.market.event_store) into a features.live.Snapshot, then, whenever its
history is asked for, reads the store's sequence number (one indexed read) and, if anything was committed since
it last looked, the rows added or changed after that number, and lays them over the snapshot
(features.live.live_history). Since numbers are taken in commit order, every event acknowledged by any worker
before a scoring pass starts is in that pass's history: read-your-writes across workers and processes, with no
message bus. When the changes since the snapshot grow past `compact_rows`, the current tables become the next
snapshot, so a refresh stays proportional to what changed recently, not to the whole history. That snapshot is
built on a background thread (seconds at a million reports) while passes go on over the old one; once it is
ready, the rows changed since the moment it was taken are read again from the store and laid over it.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pandas as pd

from features.history import History
from features.live import (
    KEYS,
    Snapshot,
    concat_rows,
    current_tables,
    live_history,
    seller_orders,
    sellers_of,
)
from features.streams import is_in
from serving.market.event_store import Market

log = logging.getLogger("docket.live")
# Changes since the snapshot are laid over it until they outgrow this share of it (or MIN_COMPACT_ROWS): a
# refresh rebuilds the streams of everything changed since the snapshot, so it must stay small.
COMPACT_SHARE, MIN_COMPACT_ROWS = 0.02, 1_000


class LiveFeed:
    def __init__(self, market: Market, compact_rows: int | None = None):
        self.market, self._fixed_compact = market, compact_rows
        self._lock = threading.Lock()
        self._compactor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="docket-compact")
        self._next: Future | None = None  # a snapshot being built: (snapshot, seq it includes)
        started = time.perf_counter()
        self._seq, tables = market.tables()
        self._use(Snapshot.of(tables))
        log.info("history read from the store in %.1f s: %s (seq %d)", time.perf_counter() - started,
                 ", ".join(f"{len(v):,} {k}" for k, v in tables.items()), self._seq)

    @property
    def seq(self) -> int:
        """The last sequence number this worker's history includes."""
        return self._seq

    def latest(self) -> History:
        """The history as last read, without asking the store: for checks that may lag a moment."""
        return self._history

    def current(self) -> History:
        """The history with every event committed before this call."""
        with self._lock:
            if self._next is not None and self._next.done():
                self._swap(self._next)
            elif self.market.last_seq() > self._seq:
                self._catch_up()
            return self._history

    def seller_orders(self, sellers: Sequence[str]) -> pd.DataFrame:
        """The current orders of these sellers as of the last refresh (call `current` first to include
        everything committed), from memory: see features.live.seller_orders."""
        with self._lock:
            snapshot, changes = self._snapshot, self._changes
        return seller_orders(snapshot, changes, sellers)

    def sellers_of(self, order_ids: Sequence[str]) -> set[str]:
        """The sellers of these orders as of the last refresh."""
        with self._lock:
            snapshot, changes = self._snapshot, self._changes
        return sellers_of(snapshot, changes, order_ids)

    def _catch_up(self) -> None:
        self._seq, new = self.market.tables(since=self._seq)
        self._changes = merge_changes(self._changes, new)
        if self._next is None and sum(len(v) for v in self._changes.values()) > self.compact_rows:
            base, changes, seq = self._snapshot, self._changes, self._seq
            self._next = self._compactor.submit(lambda: (Snapshot.of(current_tables(base, changes)), seq))
        self._history = live_history(self._snapshot, self._changes)

    def _swap(self, ready: Future) -> None:
        """Serve from the snapshot built in the background, with what changed after it was taken laid over it."""
        self._next = None
        try:
            snapshot, taken = ready.result()
        except Exception:  # keep serving over the old snapshot; the next refresh tries again
            log.exception("building the next snapshot failed")
            return
        self._seq, since = self.market.tables(since=taken)
        self._use(snapshot)
        self._changes = merge_changes({}, since)
        self._history = live_history(snapshot, self._changes)

    def _use(self, snapshot: Snapshot) -> None:
        self._snapshot, self._changes, self._history = snapshot, {}, snapshot.history
        size = sum(len(v) for v in snapshot.tables.values())
        self.compact_rows = self._fixed_compact or max(MIN_COMPACT_ROWS, int(COMPACT_SHARE * size))


def merge_changes(changes: Mapping[str, pd.DataFrame], new: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Changes since the snapshot with newer versions of the same rows replacing older ones."""
    out = dict(changes)
    for name, frame in new.items():
        if not len(frame):
            continue
        old = out.get(name)
        if old is None or not len(old):
            out[name] = frame.reset_index(drop=True)
            continue
        kept = old[~is_in(old[KEYS[name]], frame[KEYS[name]])]
        out[name] = concat_rows([kept, frame], max_chunks=32)
    return out
