"""Time windows for evaluation: train on the past, test on what came after, labels as known then.

A label counts for training only if it was known when training ends, which is how a
model retrained in production sees its data:
  * a report needs an outcome resolved before the end of the training window;
  * an order counts as fraudulent once its fraud is known, and as genuine only once it is
    `label_delay_days` old (a chargeback can still arrive before that); younger orders
    with no known fraud are left out.
Test rows are labelled with everything the data knows, but an order younger than
`label_delay_days` at the end of the data is left out of the metrics (its label is not
settled yet), as is a report that was never resolved.

Defaults come from the data: the test window is the last `TEST_SHARE` of the time span,
training covers everything before it, and the label delay is the 90th percentile of
the observed delay between an order and its chargeback (rounded up to whole days).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

TEST_SHARE = 0.2
DEFAULT_ORDER_DELAY_DAYS = 60  # when the data has no chargeback to learn the delay from
CALIBRATION_SHARE = 0.125  # of the training rows, the latest ones, held out to calibrate (0.1 of 0.8)


class WindowError(ValueError):
    """Windows that cannot be evaluated (empty, overlapping, outside the data); the message says which."""


@dataclass(frozen=True)
class Windows:
    train_start: pd.Timestamp
    train_end: pd.Timestamp  # exclusive; labels are taken as known at this moment
    test_start: pd.Timestamp
    test_end: pd.Timestamp  # exclusive
    label_delay_days: int

    def __post_init__(self) -> None:
        if not self.train_start < self.train_end <= self.test_start < self.test_end:
            raise WindowError(
                f"windows must satisfy train-start < train-end <= test-start < test-end, got {self.describe()}")
        if self.label_delay_days < 0:
            raise WindowError(f"label-delay-days must be >= 0, got {self.label_delay_days}")

    def describe(self) -> str:
        return (f"train {self.train_start:%Y-%m-%d %H:%M} .. {self.train_end:%Y-%m-%d %H:%M}, "
                f"test {self.test_start:%Y-%m-%d %H:%M} .. {self.test_end:%Y-%m-%d %H:%M}, "
                f"label delay {self.label_delay_days} d")

    def as_dict(self) -> dict:
        return {"train_start": self.train_start.isoformat(), "train_end": self.train_end.isoformat(),
                "test_start": self.test_start.isoformat(), "test_end": self.test_end.isoformat(),
                "label_delay_days": self.label_delay_days}

    @property
    def test_days(self) -> float:
        return (self.test_end - self.test_start) / pd.Timedelta(days=1)


def data_span(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last event time over the reports and orders present."""
    times = [tables[t]["created_at"] for t in ("reports", "orders") if t in tables and len(tables[t])]
    if not times:
        raise WindowError("the data has neither reports nor orders to evaluate on")
    return min(t.min() for t in times), max(t.max() for t in times)


def observed_label_delay_days(tables: dict[str, pd.DataFrame]) -> int:
    """90th percentile of (fraud known - order placed) in days, rounded up; a default when unobservable."""
    orders = tables.get("orders")
    if orders is None or not orders["fraud"].any():
        return DEFAULT_ORDER_DELAY_DAYS
    fraud = orders[orders["fraud"]]
    delay = (fraud["fraud_known_at"] - fraud["created_at"]) / pd.Timedelta(days=1)
    return max(1, math.ceil(float(np.nanpercentile(delay.to_numpy(float), 90))))


def _ts(value: str | pd.Timestamp | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as err:
        raise WindowError(f"not a date or time: {value!r}") from err
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def resolve_windows(tables: dict[str, pd.DataFrame], *, train_start=None, train_end=None, test_start=None,
                    test_end=None, label_delay_days: int | None = None) -> Windows:
    """Fill the windows the caller left open from the data (see the module docstring)."""
    first, last = data_span(tables)
    end = _ts(test_end) or last + pd.Timedelta(microseconds=1)
    start = _ts(test_start) or _ts(train_end) or first + (end - first) * (1 - TEST_SHARE)
    return Windows(
        train_start=_ts(train_start) or first,
        train_end=_ts(train_end) or start,
        test_start=start,
        test_end=end,
        label_delay_days=observed_label_delay_days(tables) if label_delay_days is None else int(label_delay_days),
    )


def rolling_windows(base: Windows, folds: int) -> list[Windows]:
    """`folds` rolling-origin windows ending with `base`: each earlier fold's test window is the one
    before, of the same length; each trains on everything from train_start up to its test window."""
    if folds < 1:
        raise WindowError(f"folds must be at least 1, got {folds}")
    length = base.test_end - base.test_start
    gap = base.test_start - base.train_end
    out = []
    for k in range(folds - 1, -1, -1):
        test_start = base.test_start - k * length
        train_end = test_start - gap
        if train_end <= base.train_start + length:
            raise WindowError(f"{folds} folds of {length.days} days leave fold {folds - k} less training time "
                              f"than one test window; ask for fewer folds")
        out.append(Windows(base.train_start, train_end, test_start, test_start + length, base.label_delay_days))
    return out
