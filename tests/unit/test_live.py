"""A live history (snapshot + changes) gives the features of one History built from all current rows."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import History, order_features, report_features
from features.live import Snapshot, current_tables, live_history
from features.simulate import simulate
from features.validate import validate_tables

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
