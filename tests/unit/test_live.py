"""A live history (snapshot + changes) gives the features of one History built from all current rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import order_features, report_features
from features.history import (
    CODED_TABLES,
    SMALL_JOIN_ROWS,
    History,
    _rows_by_key,
    code_table,
)
from features.live import Snapshot, current_tables, live_history
from features.streams import Ids
from features.validate import validate_tables
from simulator.simulate import simulate

FACTS = ("shipped_at", "delivered_at", "cancelled_at", "refunded_at", "fraud_known_at")
FLAGS = {"cancelled_at": "cancelled", "refunded_at": "refunded", "fraud_known_at": "fraud"}


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    tables = simulate(1_500, seed=5, days=60)
    return validate_tables({k: v for k, v in tables.items() if not k.startswith("truth")})


def _without_facts(orders: pd.DataFrame) -> pd.DataFrame:
    """The orders as first placed: no fulfilment facts, no fraud known yet."""
    out = orders.copy()
    for col in FACTS:
        out[col] = pd.Series(pd.NaT, index=out.index, dtype=orders[col].dtype)
    for col in FLAGS.values():
        out[col] = False
    return out


def _split(world: dict, cut: pd.Timestamp, rng: np.random.Generator, facts_later: float, accounts_later: float):
    """(snapshot tables, changes): rows created before `cut` in the snapshot, later ones as changes; some orders'
    facts arrive after the snapshot; some accounts (with everything naming them) are known only after it."""
    late_accounts = world["accounts"]["account_id"].sample(frac=accounts_later, random_state=int(rng.integers(1e9)))
    snap, changes = {}, {}
    for name, frame in world.items():
        time_col = {"accounts": "created_at", "orders": "created_at", "reports": "created_at",
                    "enforcements": "decided_at", "outcomes": "resolved_at"}[name]
        later = (frame[time_col] >= cut).to_numpy()
        if name == "accounts":
            later = later | frame["account_id"].isin(late_accounts).to_numpy()
        snap[name], changes[name] = frame[~later], frame[later]
    moved = rng.random(len(snap["orders"])) < facts_later
    snap["orders"] = pd.concat([snap["orders"][~moved], _without_facts(snap["orders"][moved])], ignore_index=True)
    changes["orders"] = pd.concat([changes["orders"], world["orders"][world["orders"]["order_id"].isin(
        snap["orders"]["order_id"].iloc[int((~moved).sum()):])]], ignore_index=True)
    return snap, changes


def _assert_same_features(world: dict, history: History) -> None:
    full = History.from_tables(world)
    pd.testing.assert_frame_equal(report_features(world["reports"], history), report_features(world["reports"], full),
                                  check_exact=False, rtol=1e-12, atol=1e-9)
    pd.testing.assert_frame_equal(order_features(world["orders"], history), order_features(world["orders"], full),
                                  check_exact=False, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("cut_share, facts_later, accounts_later", [(0.5, 0.3, 0.0), (0.8, 0.1, 0.05), (0.0, 0.0, 0.0),
                                                                    (1.0, 0.5, 0.0), (0.6, 0.2, 0.2)])
def test_live_history_features_equal_one_history_of_all_rows(world, cut_share, facts_later, accounts_later):
    times = world["reports"]["created_at"].sort_values()
    cut = times.iloc[min(int(cut_share * len(times)), len(times) - 1)] if cut_share < 1 else times.max() + pd.Timedelta(days=1)
    snap, changes = _split(world, cut, np.random.default_rng(int(cut_share * 10)), facts_later, accounts_later)
    _assert_same_features(world, live_history(Snapshot.of(snap), changes))


def test_a_new_snapshot_of_the_current_tables_answers_the_same(world):
    cut = world["reports"]["created_at"].sort_values().iloc[900]
    snap, changes = _split(world, cut, np.random.default_rng(1), 0.2, 0.1)
    snapshot = Snapshot.of(snap)
    merged = current_tables(snapshot, changes)
    assert {k: len(v) for k, v in merged.items()} == {k: len(world[k]) for k in merged}
    _assert_same_features(world, Snapshot.of(merged).history)


def test_changes_in_two_steps_equal_changes_at_once(world):
    cut = world["reports"]["created_at"].sort_values().iloc[700]
    snap, changes = _split(world, cut, np.random.default_rng(2), 0.2, 0.0)
    snapshot = Snapshot.of(snap)
    half = {k: v.iloc[: len(v) // 2] for k, v in changes.items()}
    live_history(snapshot, half)  # an earlier refresh leaves nothing behind
    _assert_same_features(world, live_history(snapshot, changes))


def test_coded_rows_of_a_table_are_the_coded_rows_of_its_pieces(world):
    """A live refresh codes a few rows at a time (one by one), a History whole tables (pandas and Arrow at
    once): both must give every row the same codes, or base + plus - minus would not cancel."""
    ids = Ids.of(world["accounts"]["account_id"].iloc[:-50])  # some accounts unknown: orphans code -1
    for name in CODED_TABLES:
        frame = world[name]
        whole = code_table(name, frame, ids)
        pieces = [code_table(name, frame.iloc[i:i + 50], ids) for i in range(0, len(frame), 50)]
        assert len(whole) and set(whole) == set(pieces[0])
        for column, values in whole.items():
            joined = np.concatenate([np.asarray(p[column]) for p in pieces])
            if column == "report_id":
                assert list(joined) == list(values)
            else:
                assert joined.dtype == values.dtype and np.array_equal(joined, values), (name, column)


def test_outcomes_join_their_reports_one_to_one_by_any_path():
    reports = np.array([f"r{i}" for i in range(5000)], dtype=object)
    outcomes = np.array([f"r{i}" for i in range(4990, -1, -3)] + ["gone", None], dtype=object)
    expected = [int(k[1:]) if isinstance(k, str) and k != "gone" else -1 for k in outcomes]
    assert len(outcomes) + len(reports) > SMALL_JOIN_ROWS  # Arrow
    assert _rows_by_key(outcomes, reports).tolist() == expected
    assert _rows_by_key(pd.array(outcomes, dtype="str"), pd.array(reports, dtype="str")).tolist() == expected
    assert _rows_by_key(np.array(["r7", None, "r1", "x"], dtype=object), reports[:10]).tolist() == [7, -1, 1, -1]
    assert _rows_by_key(np.arange(5000), np.arange(4000)[::-1]).tolist()[:2] == [3999, 3998]  # not strings
    for n in (10, 3000):  # a dict, Arrow
        with pytest.raises(pd.errors.MergeError):
            _rows_by_key(reports[:n], np.concatenate([reports[:n], reports[:1]]))
        with pytest.raises(pd.errors.MergeError):
            _rows_by_key(np.concatenate([reports[:n], reports[:1]]), reports[:n])


def _last_rows(world: dict, k: int) -> tuple[dict, dict]:
    """(snapshot, changes): the last k rows of each table (in time) arrive after the snapshot."""
    time_col = {"accounts": "created_at", "orders": "created_at", "reports": "created_at",
                "enforcements": "decided_at", "outcomes": "resolved_at"}
    snap, changes = {}, {}
    for name, frame in world.items():
        later = frame.index.isin(frame[time_col[name]].sort_values(kind="stable").index[-k:])
        snap[name], changes[name] = frame[~later], frame[later]
    return snap, changes


@pytest.mark.parametrize("k", [1, 3])
def test_a_refresh_with_a_row_or_a_few_per_table_equals_one_history_of_all_rows(world, k):
    snap, changes = _last_rows(world, k)
    snapshot = Snapshot.of(snap)
    _assert_same_features(world, live_history(snapshot, changes))
    one_table = {"reports": changes["reports"]}  # the others missing: no change
    current = {**snap, "reports": pd.concat([snap["reports"], changes["reports"]], ignore_index=True)}
    _assert_same_features(current, live_history(snapshot, one_table))


def test_no_changes_answer_like_the_snapshot(world):
    snap, _ = _last_rows(world, 5)
    snapshot = Snapshot.of(snap)
    empty = {name: frame.iloc[:0] for name, frame in snap.items()}
    for changes in ({}, empty):
        _assert_same_features(snap, live_history(snapshot, changes))


def test_an_empty_store_gives_cold_start_features_not_an_error():
    """A new store knows no account yet: a report's history features are 'no history', not an IndexError."""
    from features.contract import REPORTS
    from serving.input_checks import records_frame

    report = records_frame([{"report_id": "r", "created_at": pd.Timestamp("2025-01-01", tz="UTC"), "reporter_id": "a",
                             "reporter_type": "buyer", "channel": "livestream", "subject_id": "b", "show_id": None,
                             "order_id": "o", "category": "spam", "description": "hi"}], REPORTS)
    X = report_features(report, Snapshot.of({}).history)
    assert np.isnan(X.loc[0, ["reporter_age_days", "subject_age_days", "order_amount"]].astype(float)).all()
    assert X.loc[0, "subject_reports_30d"] == 0
