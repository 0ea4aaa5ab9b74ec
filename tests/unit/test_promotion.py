"""The promotion rule (pure) and the evaluation windows derived from data."""
from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from training.promotion import GUARDED, HIGHER, Tolerances, decide
from training.windows import WindowError, resolve_windows, rolling_windows

CHAMPION = {"fraud_reports.average_precision": 0.60, "fraud_orders.average_precision": 0.40,
            "validity.average_precision": 0.85, "fraud_reports.ece": 0.02, "fraud_orders.ece": 0.01,
            "validity.ece": 0.03, "queue.missed_goal_share": 0.30}


def worse(figure: str, by: float) -> dict:
    direction = GUARDED[figure][0]
    return {**CHAMPION, figure: CHAMPION[figure] - by if direction == HIGHER else CHAMPION[figure] + by}


def test_equal_models_are_promoted():
    d = decide(CHAMPION, dict(CHAMPION), Tolerances())
    assert d.promote and not d.forced and len(d.checks) == len(GUARDED)


@pytest.mark.parametrize("figure", list(GUARDED))
def test_worse_beyond_tolerance_on_any_guarded_figure_blocks(figure):
    d = decide(CHAMPION, worse(figure, 0.02), Tolerances())
    assert not d.promote
    assert figure in d.reason and "0.0200" in d.reason
    assert [c.figure for c in d.checks if not c.passed] == [figure]


@pytest.mark.parametrize("figure", list(GUARDED))
def test_worse_within_tolerance_passes(figure):
    assert decide(CHAMPION, worse(figure, 0.005), Tolerances()).promote


def test_force_promotes_and_says_what_it_overrode():
    d = decide(CHAMPION, worse("queue.missed_goal_share", 0.2), Tolerances(), force=True)
    assert d.promote and d.forced and d.reason.startswith("forced despite: queue.missed_goal_share")


def test_figures_missing_for_one_model_are_not_compared_but_nothing_at_all_is_an_error():
    partial = {k: v for k, v in CHAMPION.items() if not k.startswith("fraud_orders")}
    assert len(decide(CHAMPION, partial, Tolerances()).checks) == len(GUARDED) - 2
    with pytest.raises(ValueError, match="no guarded figure"):
        decide({}, {}, Tolerances())


figures = st.fixed_dictionaries({k: st.floats(0, 1) for k in GUARDED})


@given(figures, figures)
def test_promotion_is_exactly_no_figure_worse_beyond_tolerance(champion, challenger):
    tol = Tolerances()
    ok = all((champion[k] - challenger[k] if GUARDED[k][0] == HIGHER else challenger[k] - champion[k])
             <= getattr(tol, GUARDED[k][1]) + 1e-12 for k in GUARDED)
    d = decide(champion, challenger, tol)
    assert d.promote == ok and decide(champion, challenger, tol, force=True).promote


def _tables(start: str, days: int) -> dict:
    t = pd.date_range(start, periods=days, freq="D", tz="UTC")
    orders = pd.DataFrame({"created_at": t, "fraud": [i % 10 == 0 for i in range(days)],
                           "fraud_known_at": t + pd.Timedelta(days=20)})
    return {"reports": pd.DataFrame({"created_at": t}), "orders": orders}


def test_default_windows_hold_out_the_last_fifth_and_learn_the_label_delay():
    w = resolve_windows(_tables("2025-01-01", 101))
    assert w.train_start == pd.Timestamp("2025-01-01", tz="UTC")
    assert w.test_start == w.train_end == pd.Timestamp("2025-03-22", tz="UTC")
    assert w.label_delay_days == 20


def test_explicit_windows_accept_dates_and_refuse_nonsense():
    w = resolve_windows(_tables("2025-01-01", 101), train_end="2025-02-01", test_start="2025-02-15", label_delay_days=3)
    assert (w.train_end, w.test_start, w.label_delay_days) == (
        pd.Timestamp("2025-02-01", tz="UTC"), pd.Timestamp("2025-02-15", tz="UTC"), 3)
    with pytest.raises(WindowError, match="not a date"):
        resolve_windows(_tables("2025-01-01", 101), test_start="yesterday-ish")
    with pytest.raises(WindowError, match="train-start < train-end"):
        resolve_windows(_tables("2025-01-01", 101), train_end="2025-03-01", test_start="2025-02-01")


def test_rolling_windows_tile_the_end_of_the_data():
    base = resolve_windows(_tables("2025-01-01", 101))
    folds = rolling_windows(base, 3)
    assert folds[-1] == base
    for a, b in zip(folds, folds[1:]):
        assert a.test_end == b.test_start and a.train_start == b.train_start
    with pytest.raises(WindowError, match="fewer folds"):
        rolling_windows(base, 5)
