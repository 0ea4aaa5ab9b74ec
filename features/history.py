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

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

NAT = np.iinfo(np.int64).min
_TIME_BITS = 34  # seconds since 1970 fit until the year 2514
_TIME_MASK = (1 << _TIME_BITS) - 1

HOUR = 3600
DAY = 24 * HOUR


def seconds(values: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 seconds since the epoch; missing values become NAT."""
    return np.asarray(values.dt.as_unit("s").array.asi8, dtype=np.int64)


def codes_for(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Integer account codes for ids; -1 where the id is missing or unknown."""
    codes = index.get_indexer(ids.astype(object).where(ids.notna(), None))
    return codes.astype(np.int64)


def _composite(keys: np.ndarray, times: np.ndarray) -> np.ndarray:
    return (keys << _TIME_BITS) | (times & _TIME_MASK)


@dataclass
class EventStream:
    """Events of one kind, keyed by account code, answerable by time window.

    `values` are summed over a window (e.g. order amounts, valid flags); the
    event count is always available. Events with a negative key or a missing
    time are dropped at construction: they can never match a query.
    """

    keys: np.ndarray
    times: np.ndarray
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        keep = (self.keys >= 0) & (self.times != NAT)
        keys, times = self.keys[keep], self.times[keep]
        order = np.lexsort((times, keys))
        self.keys, self.times = keys[order], times[order]
        self._comp = _composite(self.keys, self.times)
        self._cums = {
            name: np.concatenate(([0.0], np.cumsum(np.asarray(v, dtype=np.float64)[keep][order])))
            for name, v in self.values.items()
        }
        self.order = np.flatnonzero(keep)[order]

    def __len__(self) -> int:
        return len(self.keys)

    def position(self, keys: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Index of the first event of `keys` at or after `t` (so events before t end here)."""
        pos = np.searchsorted(self._comp, _composite(np.maximum(keys, 0), t), side="left")
        return np.where(keys < 0, 0, pos)

    def bounds(self, keys: np.ndarray, t: np.ndarray, window: int | None) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) positions of the events of each key in [t - window, t); window None = all past."""
        hi = self.position(keys, t)
        if window is None:
            lo = self.position(keys, np.zeros_like(t))
        else:
            lo = self.position(keys, np.maximum(t - window, 0))
        return lo, np.maximum(hi, lo)

    def count(self, keys: np.ndarray, t: np.ndarray, window: int | None = None) -> np.ndarray:
        lo, hi = self.bounds(keys, t, window)
        return (hi - lo).astype(np.float64)

    def total(self, name: str, keys: np.ndarray, t: np.ndarray, window: int | None = None) -> np.ndarray:
        lo, hi = self.bounds(keys, t, window)
        cums = self._cums[name]
        return cums[hi] - cums[lo]

    def count_where(
        self, keys: np.ndarray, t: np.ndarray, window: int, event_flag: np.ndarray, threshold: np.ndarray
    ) -> np.ndarray:
        """Count window events whose `event_flag` (in stream order) is below each query's threshold.

        Used for distinct counts: an event counts when the previous event of the
        same pair fell before the window. The work is proportional to the
        number of (query, event) pairs in the windows, which is small for short
        windows even during a report spike.
        """
        lo, hi = self.bounds(keys, t, window)
        sizes = hi - lo
        out = np.zeros(len(keys), dtype=np.float64)
        total = int(sizes.sum())
        if total == 0:
            return out
        query = np.repeat(np.arange(len(keys)), sizes)
        starts = np.repeat(lo - np.concatenate(([0], np.cumsum(sizes)[:-1])), sizes)
        idx = starts + np.arange(total)
        hits = event_flag[idx] < threshold[query]
        return np.bincount(query, weights=hits, minlength=len(keys)).astype(np.float64)
