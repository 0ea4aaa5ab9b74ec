"""What `docket evaluate` measures and says about it, on small hand-made windows and rows: window
refusals that name a possible fix, the known-fraud-account exclusion, k set directly, the protocol,
the nothing-evaluated check and the scores table."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.streams import DAY
from training.evaluation import (
    Evaluation,
    Options,
    evaluate,
    fraud_table,
    nothing_evaluated,
    protocol,
)
from training.evaluation_data import NEVER, Prepared, Rows, fraud_known_before_day, known_fraud_account_rows
from training.evaluation_output import scores_table, write_scores
from training.window_scoring import LOGISTIC_MAX_ROWS
from training.windows import CALIBRATION_SHARE, Windows, WindowError, rolling_windows

T0 = pd.Timestamp("2025-01-01", tz="UTC")
D = pd.Timedelta(days=1)


def windows(train_days: float, test_days: float, gap_days: float = 0, delay: int = 3) -> Windows:
    train_end = T0 + train_days * D
    test_start = train_end + gap_days * D
    return Windows(T0, train_end, test_start, test_start + test_days * D, delay)


def _date(message: str, after: str) -> pd.Timestamp:
    """The date the message gives right after `after` (e.g. 'an earlier --test-end (at or before ')."""
    found = re.search(re.escape(after) + r"(\d{4}-\d\d-\d\d \d\d:\d\d)", message)
    assert found, (after, message)
    return pd.Timestamp(found.group(1), tz="UTC")


# --- windows ---------------------------------------------------------------------------------------------------

def test_training_as_long_as_one_test_window_is_enough():
    assert len(rolling_windows(windows(7, 7), 1)) == 1
    folds = rolling_windows(windows(21, 7), 3)
    assert folds[0].train_end - folds[0].train_start == 7 * D  # the earliest fold: exactly one test window


def test_one_fold_with_too_little_training_names_the_figures_and_every_possible_fix():
    base = windows(5, 7)
    with pytest.raises(WindowError) as refused:
        rolling_windows(base, 1)
    message = str(refused.value)
    assert "is 5 days, shorter than the 7-day test window" in message
    assert "fewer folds" not in message  # there is no fewer than one
    assert "an earlier --train-start (at or before 2024-12-30 00:00)" in message
    assert "a later --test-start (at or after 2025-01-07 00:00" in message
    assert "an earlier --test-end (at or before 2025-01-11 00:00: a 5-day test window)" in message


def test_an_earlier_train_start_is_offered_only_where_the_data_reaches():
    with pytest.raises(WindowError) as refused:
        rolling_windows(windows(5, 7), 1, data_start=T0)
    assert "--train-start" not in str(refused.value)
    with pytest.raises(WindowError) as refused:
        rolling_windows(windows(5, 7), 1, data_start=T0 - 30 * D)
    assert "an earlier --train-start" in str(refused.value)


def test_too_many_folds_ask_for_fewer_folds_or_a_shorter_test_window():
    with pytest.raises(WindowError) as refused:
        rolling_windows(windows(20, 7), 3)
    message = str(refused.value)
    assert "3 folds of 7-day test windows leave fold 1 only 6 days of training" in message
    assert "fewer folds (--folds 2 at most)" in message
    assert "a 6.7-day test window" in message
    with pytest.raises(WindowError, match="leave fold 1 no training time"):
        rolling_windows(windows(20, 7), 5)


@pytest.mark.parametrize("train_days, test_days, gap_days, folds", [
    (5, 7, 0, 1), (20, 7, 0, 3), (20, 7, 1, 4), (3.3, 10.7, 0.5, 2), (100, 60, 0, 2)])
def test_every_fix_the_refusal_offers_works(train_days, test_days, gap_days, folds):
    base = windows(train_days, test_days, gap_days)
    with pytest.raises(WindowError) as refused:
        rolling_windows(base, folds)
    message = str(refused.value)
    later = _date(message, "a later --test-start (at or after ")
    fixes = [
        Windows(_date(message, "an earlier --train-start (at or before "), base.train_end, base.test_start,
                base.test_end, 3),
        Windows(base.train_start, later - (base.test_start - base.train_end), later, base.test_end, 3),
        Windows(base.train_start, base.train_end, base.test_start,
                _date(message, "an earlier --test-end (at or before "), 3),
    ]
    for fixed in fixes:
        assert len(rolling_windows(fixed, folds)) == folds, fixed.describe()
    fewer = re.search(r"--folds (\d+) at most", message)
    if fewer:
        assert len(rolling_windows(base, int(fewer.group(1)))) == int(fewer.group(1))
        with pytest.raises(WindowError):
            rolling_windows(base, int(fewer.group(1)) + 1)


# --- excluding accounts whose fraud was known ------------------------------------------------------------------

def test_rows_of_an_account_are_dropped_from_the_days_after_its_fraud_became_known():
    known_at = 2 * DAY + 10 * 3600  # day 2, 10:00
    accounts = np.array(["a", "a", "a", "b", "c"])
    times = np.array([1 * DAY + 5, 2 * DAY + 11 * 3600, 3 * DAY, 3 * DAY, 3 * DAY])
    dropped = fraud_known_before_day(accounts, times, np.array(["a", "c"]), np.array([known_at, NEVER]))
    # a: day 1 before its fraud, day 2 the day it became known (not before the day began), day 3 after it.
    assert dropped.tolist() == [False, False, True, False, False]


def test_the_earliest_known_fraud_of_any_row_of_the_account_counts():
    dropped = fraud_known_before_day(np.array(["a"]), np.array([5 * DAY]), np.array(["a", "a"]),
                                     np.array([9 * DAY, 4 * DAY + 1]))
    assert dropped.tolist() == [True]


def _rows(frame: pd.DataFrame, known: np.ndarray, fraud: np.ndarray) -> Rows:
    times = (frame["created_at"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return Rows(frame=frame, X=pd.DataFrame(index=frame.index), times=times.to_numpy(np.int64),
                known=np.asarray(known, np.int64), labels={"fraud": np.asarray(fraud, int)}, oracle=None)


def test_known_fraud_account_rows_look_at_every_order_of_the_buyer():
    every = _rows(pd.DataFrame({"order_id": ["o1", "o2", "o3", "o4"], "buyer_id": ["a", "a", "b", "c"],
                                "created_at": T0 + pd.to_timedelta([0, 10, 10, 11], unit="D")}),
                  known=[1 * DAY + (T0.value // 10**9), NEVER, NEVER, NEVER], fraud=[1, 0, 0, 0])
    test = every.take(np.array([False, True, True, True]))
    assert known_fraud_account_rows(test, every, "buyer_id").tolist() == [True, False, False]


# --- k, protocol, nothing evaluated ----------------------------------------------------------------------------

def test_k_set_directly_replaces_the_review_share_and_says_so():
    y = np.array([1, 0, 1, 0, 0, 0])
    days, accounts = np.array([0, 0, 0, 1, 1, 1]), np.array(["a", "b", "c", "d", "e", "f"])
    scored = {"model": (np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.1]), True)}
    direct = fraud_table(y, scored, days, accounts, review_share=0.05, k_per_day=2)
    assert (direct["k_per_day"], direct["k"], direct["k_set_by"], direct["review_share"]) == (2, 4, "k", None)
    assert direct["rankers"]["model"]["card_precision_at_k"] == 0.5  # day 0: both picks fraud; day 1: none
    shared = fraud_table(y, scored, days, accounts, review_share=0.05)
    assert (shared["k_per_day"], shared["k_set_by"], shared["review_share"]) == (1, "review_share", 0.05)


def test_k_below_one_is_refused():
    with pytest.raises(ValueError, match="k_per_day"):
        Options(k_per_day=0)


def test_protocol_states_the_sample_sizes_and_hold_outs_from_the_constants():
    p = protocol(Options(k_per_day=4, exclude_known_fraud_accounts=True))
    assert p["calibration_share"] == CALIBRATION_SHARE and p["model_fit_share"] == 1 - CALIBRATION_SHARE
    assert p["logistic_regression_max_rows"] == LOGISTIC_MAX_ROWS
    assert f"{1 - CALIBRATION_SHARE:.1%}" in p["model_training"] and f"{LOGISTIC_MAX_ROWS:,}" in p["baseline_training"]
    assert p["review_capacity"] == {"set_by": "k", "k_per_day": 4} and p["exclude_known_fraud_accounts"] is True
    assert protocol(Options())["review_capacity"] == {"set_by": "review_share", "review_share": 0.05}


def _orders_only(days: int, fraud_every: int, known_after_days: float) -> Prepared:
    created = T0 + pd.to_timedelta(np.arange(days * 4) * 6, unit="h")
    fraud = np.arange(len(created)) % fraud_every == 0
    frame = pd.DataFrame({"order_id": [f"o{i}" for i in range(len(created))], "buyer_id": "a", "created_at": created})
    rows = _rows(frame, known=np.zeros(len(frame)), fraud=fraud)
    rows.known = np.where(fraud, rows.times + int(known_after_days * DAY), NEVER)
    return Prepared(reports=None, orders=rows, data_end=int(rows.times.max()),
                    skipped={"reports": "report models need reports and outcomes"})


def test_a_label_delay_as_long_as_the_training_window_leaves_nothing_and_says_what_to_change():
    prep = _orders_only(days=90, fraud_every=5, known_after_days=2)  # test orders settled by day 90
    w = Windows(T0, T0 + 30 * D, T0 + 30 * D, T0 + 60 * D, label_delay_days=30)
    ev = evaluate(prep, w, None)  # nothing is fitted: only the window's first instant is 30 days old at its end
    why = ev.report["skipped"]["orders"]
    assert why.startswith("only 1 labelled orders in the training window; ")
    assert "30-day label delay is as long as the 30-day training window" in why and "--label-delay-days" in why
    message = nothing_evaluated(ev)
    assert message.startswith("nothing could be evaluated in train 2025-01-01 00:00 .. 2025-01-31 00:00")
    assert "reports: report models need reports and outcomes" in message and "orders: " in message
    assert "\n" not in message


def test_no_labelled_row_at_all_is_said_plainly():
    prep = _orders_only(days=60, fraud_every=5, known_after_days=45)  # no fraud known before train-end
    ev = evaluate(prep, Windows(T0, T0 + 30 * D, T0 + 30 * D, T0 + 60 * D, label_delay_days=40), None)
    assert ev.report["skipped"]["orders"].startswith("no labelled orders in the training window; ")


def test_one_measured_task_is_enough():
    ev = Evaluation(windows=windows(30, 7), report={"fraud_orders": {}, "skipped": {"reports": "no reports"}})
    assert nothing_evaluated(ev) is None


# --- the scores file -------------------------------------------------------------------------------------------

def _evaluated() -> Evaluation:
    ev = Evaluation(windows=windows(30, 7), report={})
    y_r, y_o = np.array([1, 0]), np.array([0, 0, 1])
    ev.curves = {"fraud (reports)": {"model": (y_r, np.array([0.9, 0.2])), "rules": (y_r, np.array([10.0, 5.0]))},
                 "validity": {"model": (y_r, np.array([0.5, 0.5]))},
                 "fraud (orders)": {"model": (y_o, np.array([0.1, 0.2, 0.7])), "fifo": (y_o, np.array([-1.0, -2, -3]))}}
    day = pd.Timestamp("2025-02-01").date()
    ev.ranked = {"fraud_reports": pd.DataFrame({"id": ["r1", "r2"], "account": ["a", "b"], "day": [day, day]}),
                 "fraud_orders": pd.DataFrame({"id": ["o1", "o2", "o3"], "account": ["a", "c", "c"], "day": [day] * 3})}
    return ev


def test_scores_table_has_one_row_per_ranked_row_and_a_column_per_ranker():
    table = scores_table(_evaluated())
    assert list(table.columns) == ["task", "id", "account", "day", "label", "model", "rules", "fifo"]
    assert table["task"].tolist() == ["fraud_reports"] * 2 + ["fraud_orders"] * 3
    assert table["label"].tolist() == [1, 0, 0, 0, 1]
    assert table["model"].tolist() == [0.9, 0.2, 0.1, 0.2, 0.7]
    assert table["rules"].isna().tolist() == [False, False, True, True, True]  # the rules rank reports only


@pytest.mark.parametrize("name", ["scores.csv", "scores.parquet", "nested/scores.txt"])
def test_scores_are_written_as_parquet_or_csv_by_name(tmp_path, name):
    path = write_scores(scores_table(_evaluated()), tmp_path / name)
    back = pd.read_parquet(path) if name.endswith(".parquet") else pd.read_csv(path)
    assert len(back) == 5 and back["id"].tolist() == ["r1", "r2", "o1", "o2", "o3"]
    if name.endswith(".parquet"):
        assert path.read_bytes()[:4] == b"PAR1"
