"""Point-in-time lookups over event histories, vectorised.

Every history feature is "how many (or how much of) some event happened to
account k in the window [t - w, t)". An `EventStream` keeps one kind of event
sorted by (account, time) with running sums, so any batch of such questions is
two binary searches per window. Times are whole seconds: events in the same
second as the query count as simultaneous and are not seen. That one structure answers both the training
batch (a million reports at once) and a single online request, which is what
keeps the two paths identical. Events at exactly t are excluded: a report never
sees itself or anything filed in the same second.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NAT = np.iinfo(np.int64).min
_TIME_BITS = 34  # seconds since 1970 fit until the year 2514
_TIME_MASK = (1 << _TIME_BITS) - 1

HOUR = 3600
ARROW_LOOKUP_MIN_IDS = 10_000  # fewer ids than this are always looked up through the pandas index
# At most this many ids are looked up one at a time in the index's hash table: building the pandas Index that
# get_indexer takes costs ~150 us, which was a tenth of scoring one report; a lookup costs ~1 us.
ONE_BY_ONE_MAX_IDS = 64
SMALL_QUERY_ROWS = 4096  # a Query this small keeps its needles per window (see Query.__init__)
DAY = 24 * HOUR


def seconds(values: pd.Series | Sequence) -> np.ndarray:
    """UTC timestamps as int64 seconds since the epoch; missing values become NAT. A plain sequence (of
    tz-aware timestamps) goes through a DatetimeIndex: the same conversion, without a Series' cost."""
    array = values.array if isinstance(values, pd.Series) else values
    if isinstance(array, pd.arrays.DatetimeArray) and array.unit in _PER_SECOND:
        # What .dt.as_unit("s") gives (it floors; NaT stays NaT) without the accessor's ~70 us: a refresh of
        # the live history converts some twenty columns of a few rows.
        ticks, per_second = array.asi8, _PER_SECOND[array.unit]
        return np.array(ticks, dtype=np.int64) if per_second == 1 else np.where(ticks == NAT, NAT, ticks // per_second)
    if not isinstance(values, pd.Series):
        return np.asarray(pd.DatetimeIndex(values).as_unit("s").asi8, dtype=np.int64)
    return np.asarray(values.dt.as_unit("s").array.asi8, dtype=np.int64)


_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def column_values(frame: pd.DataFrame, name: str):
    """frame[name]'s values as stored (a numpy array or a pandas ExtensionArray), to read only.

    pandas 3 spends ~18 us building the Series frame[name] returns, and a refresh of the live history reads
    some thirty columns of a few rows; this reads the stored array through pandas' own read-only accessor,
    and falls back to the Series' array where that accessor is missing or `name` is not exactly one column.
    The array is the frame's own memory, outside copy-on-write's tracking: derive new arrays from it, never
    keep it (a later write to the frame would show through)."""
    stored = getattr(frame, "_get_column_array", None)
    if stored is not None:
        at = frame.columns.get_loc(name)
        if isinstance(at, int):
            return stored(at)
    return frame[name].array


def values_of(column: pd.Series | Sequence) -> Sequence:
    """A Series' array, or a plain sequence as it is: the features take a frame's columns or, for a request's
    few reports, plain lists (building a frame and reading its columns back cost ~1 ms of a 6 ms pass)."""
    return column.array if isinstance(column, pd.Series) else column


def is_in(values: pd.Series | Sequence, among: pd.Series | Sequence) -> np.ndarray:
    """Which of these ids are among those, as a numpy bool array, through Arrow: pandas' isin on Arrow-backed
    text walks the other set in Python (34 ms for 4,000 ids against 40,000; 1.3 ms here)."""
    def text(ids: pd.Series | Sequence) -> pa.Array:
        ids = list(ids) if isinstance(ids, (set, frozenset)) else ids
        return pa.array(ids).cast(pa.large_string()) if len(ids) else pa.array([], pa.large_string())
    return pc.is_in(text(values), value_set=text(among)).to_numpy(zero_copy_only=False)


def as_list(values: Sequence) -> list:
    """The values as a Python list: iterating an Arrow-backed pandas array costs ~1.5 us a value, its tolist
    a tenth of that."""
    if isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray, pd.Series)):
        return values.tolist()
    return list(values)


def codes_for(ids: pd.Series | Sequence, index: pd.Index, index_arrow: pa.Array | None = None) -> np.ndarray:
    """Integer account codes for ids; -1 where the id is missing or unknown.

    Given `index_arrow` (the index's ids as an Arrow array), a batch of more than a quarter as many ids as
    the index holds is looked up by Arrow's hash lookup, which hashes the index afresh but never makes a
    Python string per id: 2M buyer ids 0.84 -> 0.15 s. Same codes (the ids are unique).
    """
    if len(ids) <= ONE_BY_ONE_MAX_IDS:
        return np.array([code_of(index, v) for v in as_list(values_of(ids))], dtype=np.int64)
    if index_arrow is not None and len(ids) >= max(ARROW_LOOKUP_MIN_IDS, len(index) // 4):
        found = pc.index_in(pa.array(values_of(ids), type=index_arrow.type), value_set=index_arrow)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    # An object Index of the values is the cheapest input get_indexer takes (missing values match nothing):
    # converting the Series (astype, where) cost 3-10x more, which mattered on a one-report request.
    return index.get_indexer(pd.Index(values_of(ids), dtype=object)).astype(np.int64)


def code_of(index: pd.Index, key) -> int:
    """One id's position in an index of unique string ids; -1 if it is missing, unknown or not a string."""
    if not isinstance(key, str):
        return -1
    try:
        code = index.get_loc(key)
    except KeyError:
        return -1
    return code if isinstance(code, int) else -1  # ids are unique; anything else is not one row


@dataclass(frozen=True)
class Ids:
    """Unique string ids and their integer codes: a frozen index (with its Arrow copy for large lookups) and the
    ids added since, coded from len(index) on.

    A live history grows by a few accounts and orders at a time; rebuilding a pandas index of every id for each
    would cost as much as the lookups of a whole request, so additions live in a dict beside the index until the
    next snapshot folds them in. Codes never change once given, so events coded earlier stay valid.
    """

    index: pd.Index
    arrow: pa.Array
    added: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, ids: pd.Series | Sequence) -> "Ids":
        return cls(pd.Index(pd.Series(values_of(ids), dtype=object), dtype=object),
                   pa.array(pd.Series(values_of(ids), dtype=object), type=pa.large_string()))

    def __len__(self) -> int:
        return len(self.index) + len(self.added)

    def code(self, key) -> int:
        """One id's code, -1 if it is missing, unknown or not a string."""
        found = code_of(self.index, key)
        return self.added.get(key, -1) if found < 0 and self.added and isinstance(key, str) else found

    def codes(self, ids: pd.Series | Sequence) -> np.ndarray:
        """Codes for many ids, -1 where unknown (see codes_for)."""
        if len(ids) <= ONE_BY_ONE_MAX_IDS:  # each a hash lookup (indexing an Arrow array costs ~10 us a value)
            return np.array([self.code(v) for v in as_list(values_of(ids))], dtype=np.int64)
        out = codes_for(ids, self.index, self.arrow)
        if self.added:
            missing = np.flatnonzero(out < 0)
            if len(missing):
                out[missing] = [self.added.get(v, -1) if isinstance(v, str) else -1
                                for v in as_list(_pick(values_of(ids), missing))]
        return out

    def extended(self, new_ids: Iterable[str]) -> "Ids":
        """These ids plus `new_ids` not already known, each given the next free code."""
        added = dict(self.added)
        new_ids = as_list(values_of(new_ids))
        # Many ids are looked up in the index at once (one at a time, an unknown id costs ~3 us).
        in_index = self.index.get_indexer(pd.Index(new_ids, dtype=object)) if len(new_ids) > ONE_BY_ONE_MAX_IDS \
            else None
        for i, key in enumerate(new_ids):
            if isinstance(key, str) and key not in added \
                    and (code_of(self.index, key) if in_index is None else in_index[i]) < 0:
                added[key] = len(self.index) + len(added)
        return self if len(added) == len(self.added) else Ids(self.index, self.arrow, added)

    def all_ids(self) -> np.ndarray:
        """Every id in code order."""
        return np.concatenate([self.index.to_numpy(object), np.array(list(self.added), dtype=object)])


def _pick(values: Sequence, rows: np.ndarray) -> Sequence:
    """values[rows]: a numpy or pandas array takes them at once (indexing an Arrow array one value at a time
    costs ~5 us a value), anything else one by one."""
    if isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray)):
        return values[rows]
    return [values[int(i)] for i in rows]


def _composite(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    return (keys << _TIME_BITS) | (times & _TIME_MASK)


class Query:
    """Rows to look up: account keys and times, sorted once for all streams and windows.

    Binary searches with sorted needles run about ten times faster (cache
    locality), and (key, t - w) stays in (key, t) order for every window w,
    so one sort serves every lookup. Bounds are cached per stream and window,
    because a count and a sum over the same window share them.
    """

    def __init__(self, keys: np.ndarray, t: np.ndarray):
        self.keys = np.asarray(keys, dtype=np.int64)
        self.t = np.asarray(t, dtype=np.int64)
        self.order = np.lexsort((self.t, self.keys))
        self._keys = np.maximum(self.keys[self.order], 0)
        self._t = self.t[self.order]
        self._unknown = self.keys < 0
        self._cache: dict[tuple[int, int | None], np.ndarray] = {}
        # A request's few rows: per-call numpy overheads dominate, so the needles of each window are built once
        # for all streams, and the sort and unknown-key fix-ups are skipped when there is nothing to undo
        # (one report's pass made ~70 lookups of 8 numpy calls each).
        small = len(self.keys) <= SMALL_QUERY_ROWS
        self._needles: dict[int | None, np.ndarray] | None = {} if small else None
        self._in_order = small and bool((self.order == np.arange(len(self.order))).all())
        self._any_unknown = bool(self._unknown.any())

    def __len__(self) -> int:
        return len(self.keys)

    def sorted_composite(self, offset: int | None) -> np.ndarray:
        """(key, t - offset) composites in sorted order; offset None means time 0 (all the past)."""
        t = np.zeros_like(self._t) if offset is None else np.maximum(self._t - offset, 0)
        return _composite(self._keys, t)

    def _needle(self, offset: int | None) -> np.ndarray:
        if self._needles is None:
            return self.sorted_composite(offset)
        if offset not in self._needles:
            self._needles[offset] = self.sorted_composite(offset)
        return self._needles[offset]

    def cached(self, stream: "EventStream", offset: int | None) -> np.ndarray:
        """Index in `stream` of the first event at or after (key, t - offset), in query row order."""
        slot = (id(stream), offset)
        if slot not in self._cache:
            pos_sorted = np.searchsorted(stream.composite, self._needle(offset), side="left")
            if self._in_order:
                pos = pos_sorted.astype(np.int32)  # streams hold < 2**31 events
            else:
                pos = np.empty(len(pos_sorted), dtype=np.int32)
                pos[self.order] = pos_sorted
            if self._any_unknown:
                pos[self._unknown] = 0
            self._cache[slot] = pos
        return self._cache[slot]


@dataclass
class EventStream:
    """Events of one kind, keyed by account code, answerable by time window.

    `values` are summed over a window (e.g. order amounts, valid flags); the
    event count is always available. `flags` are per-event numbers kept as they
    are (in stream order) for `count_where`. Events with a negative key or a
    missing time are dropped at construction: they can never match a query.
    """

    keys: np.ndarray
    times: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)
    flags: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.keys) >= 2**31:
            raise ValueError("an event stream holds at most 2**31 - 1 events")
        if not len(self.keys):  # the same empty arrays, without sorting nothing (a live refresh builds many)
            none = np.zeros(0, dtype=np.intp)
            self.keys, self.times = self.keys[none], self.times[none]
            self.composite, self.order = _composite(self.keys, self.times), none
            self._cums = {name: np.zeros(1) for name in self.values}
            self.flags = {name: np.asarray(v)[none] for name, v in self.flags.items()}
            return
        keep = (self.keys >= 0) & (self.times != NAT)
        keys, times = self.keys[keep], self.times[keep]
        composite = _composite(keys, times)
        if len(times) and (times.min() < 0 or times.max() > _TIME_MASK):  # the composite would not sort by time
            order = np.lexsort((times, keys))
        else:  # the same order as lexsort by (key, time), 3x faster: one stable sort of the composites
            order = np.argsort(composite, kind="stable")
        self.keys, self.times, self.composite = keys[order], times[order], composite[order]
        self._cums = {
            name: np.concatenate(([0.0], np.cumsum(np.asarray(v, dtype=np.float64)[keep][order])))
            for name, v in self.values.items()
        }
        self.order = np.flatnonzero(keep)[order]
        self.flags = {name: np.asarray(v)[self.order] for name, v in self.flags.items()}

    def __len__(self) -> int:
        return len(self.keys)

    def bounds(self, q: Query, window: int | None) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) positions of each query key's events in [t - window, t); window None = all the past."""
        hi = q.cached(self, 0)
        lo = q.cached(self, window)
        return lo, np.maximum(hi, lo)

    def count(self, q: Query, window: int | None = None) -> np.ndarray:
        lo, hi = self.bounds(q, window)
        return (hi - lo).astype(np.float64)

    def total(self, name: str, q: Query, window: int | None = None) -> np.ndarray:
        lo, hi = self.bounds(q, window)
        cums = self._cums[name]
        return cums[hi] - cums[lo]

    def last_time(self, q: Query) -> np.ndarray:
        """Time of each query key's latest event strictly before t (NAT if it has none)."""
        lo, hi = self.bounds(q, None)
        found = (hi > lo) & (q.keys >= 0)
        return np.where(found, self.times[np.maximum(hi - 1, 0)] if len(self) else NAT, NAT)

    def count_where(self, q: Query, window: int, flag: str, threshold: np.ndarray) -> np.ndarray:
        """Count window events whose flag `flag` is below each query's threshold.

        Used for distinct counts: an event counts when the previous event of the
        same pair fell before the window. The work is proportional to the
        number of (query, event) pairs in the windows, which is small for short
        windows even during a report spike.
        """
        lo, hi = self.bounds(q, window)
        sizes = hi - lo
        out = np.zeros(len(q), dtype=np.float64)
        total = int(sizes.sum())
        if total == 0:
            return out
        query = np.repeat(np.arange(len(q)), sizes)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes)
        idx = starts + np.arange(total)
        hits = self.flags[flag][idx] < threshold[query]
        return np.bincount(query, weights=hits, minlength=len(q)).astype(np.float64)


@dataclass(frozen=True)
class LayeredStream:
    """A stream as it stood at a snapshot (`base`), plus the events added since (`plus`) minus the events
    withdrawn since (`minus`): what a live history answers with (features.live).

    Counts, sums and flagged counts are sums over events, so base + plus - minus equals the answer of one
    stream built from the current events, without rebuilding the base. An event is withdrawn only to be
    added again with other derived values (an order whose facts arrived, a report whose pair gained a report),
    never at another time, so the latest event before t is the later of the base's and the additions'.
    """

    base: EventStream
    plus: EventStream
    minus: EventStream

    def __len__(self) -> int:
        return len(self.base) + len(self.plus) - len(self.minus)

    def count(self, q: Query, window: int | None = None) -> np.ndarray:
        return self.base.count(q, window) + self.plus.count(q, window) - self.minus.count(q, window)

    def total(self, name: str, q: Query, window: int | None = None) -> np.ndarray:
        return self.base.total(name, q, window) + self.plus.total(name, q, window) - self.minus.total(name, q, window)

    def last_time(self, q: Query) -> np.ndarray:
        return np.maximum(self.base.last_time(q), self.plus.last_time(q))

    def count_where(self, q: Query, window: int, flag: str, threshold: np.ndarray) -> np.ndarray:
        return (self.base.count_where(q, window, flag, threshold) + self.plus.count_where(q, window, flag, threshold)
                - self.minus.count_where(q, window, flag, threshold))
