"""Time windows for evaluation: train on the past, test on what came after, labels as known then.

A label counts for training only if it was known when training ends, which is how a
model retrained in production sees its data:
  * a report needs an outcome resolved before the end of the training window;
  * an order counts only once it is `label_delay_days` old (a chargeback can still arrive
    before that), as fraudulent if its fraud is known by then and genuine otherwise; younger
    orders are left out, whatever is known of them (keeping the young ones whose fraud is
    already known would choose rows by their label).
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


def rolling_windows(base: Windows, folds: int, data_start: pd.Timestamp | None = None) -> list[Windows]:
    """`folds` rolling-origin windows ending with `base`: each earlier fold's test window is the one
    before, of the same length; each trains on everything from train_start up to its test window.

    Every fold must train on at least one test window's time: the earliest fold has the least, so
    the folds fit when the base training window holds `folds` test windows. `data_start` (the data's
    first event), when given, keeps "an earlier --train-start" out of the advice if no data is there.
    """
    if folds < 1:
        raise WindowError(f"folds must be at least 1, got {folds}")
    length = base.test_end - base.test_start
    if base.train_end - base.train_start < folds * length:
        raise WindowError(too_little_training(base, folds, data_start))
    gap = base.test_start - base.train_end
    out = []
    for k in range(folds - 1, -1, -1):
        test_start = base.test_start - k * length
        out.append(Windows(base.train_start, test_start - gap, test_start, test_start + length, base.label_delay_days))
    return out


def too_little_training(base: Windows, folds: int, data_start: pd.Timestamp | None = None) -> str:
    """Why `folds` folds of `base`'s test window leave the earliest fold less training time than one test
    window, and every change that would fix it, with the dates to use.

    The fixes, for S = train-start, E = test-end, L = the test window, T = the training time, f = folds
    and g = the gap between train-end and test-start (kept as it is): fewer folds (T // L, when at least
    one fits); an earlier train-start (S <= train-end - f L, if the data reaches back that far); a
    later test-start, which shortens the test window and lengthens training at once
    (test-start >= S + (f (E - S) + g) / (f + 1)); an earlier test-end (a window of T / f at most).
    """
    length = base.test_end - base.test_start
    training = base.train_end - base.train_start
    first_training = training - (folds - 1) * length
    first_end = base.train_end - (folds - 1) * length
    if folds == 1:
        problem = (f"the training window ({_at(base.train_start)} .. {_at(base.train_end)}) is {_days(training)}, "
                   f"shorter than the {span_days(length)}-day test window "
                   f"({_at(base.test_start)} .. {_at(base.test_end)})")
    elif first_training <= pd.Timedelta(0):
        problem = (f"{folds} folds of {span_days(length)}-day test windows leave fold 1 no training time (its training "
                   f"would end at {_at(first_end)}, not after train-start {_at(base.train_start)})")
    else:
        problem = (f"{folds} folds of {span_days(length)}-day test windows leave fold 1 only "
                   f"{_days(first_training)} of training ({_at(base.train_start)} .. {_at(first_end)}), "
                   "less than one test window")
    fixes = []
    fit = int(training // length)
    if folds > 1 and fit >= 1:
        fixes.append(f"fewer folds (--folds {fit} at most)")
    earliest = base.train_end - folds * length
    if data_start is None or data_start <= earliest:
        fixes.append(f"an earlier --train-start (at or before {_at(earliest.floor('min'))})")
    gap = base.test_start - base.train_end
    split = (base.train_start + (folds * (base.test_end - base.train_start) + gap) / (folds + 1)).ceil("min")
    moved = "--train-end too if you set it" if gap == pd.Timedelta(0) else f"--train-end {_days(gap)} before it"
    fixes.append(f"a later --test-start (at or after {_at(split)}; {moved})")
    shorter = training / folds
    fixes.append(f"an earlier --test-end (at or before {_at((base.test_start + shorter).floor('min'))}: "
                 f"a {span_days(shorter)}-day test window)")
    return f"{problem}; each fold must train for at least one test window: ask for " + ", or ".join(fixes)


def _at(ts: pd.Timestamp) -> str:
    return f"{ts:%Y-%m-%d %H:%M}"


def span_days(span: pd.Timedelta) -> str:
    """Days with one decimal at most: 73, 5.3."""
    return f"{span / pd.Timedelta(days=1):.1f}".removesuffix(".0")


def _days(span: pd.Timedelta) -> str:
    number = span_days(span)
    return f"{number} day" if number == "1" else f"{number} days"
