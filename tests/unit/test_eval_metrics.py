"""Ranking metrics at capacity k and the baseline comparison table: hand-computed cases and properties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy.queue import rules_priority_from_weights
from training.baselines import fifo_scores
from training.evaluation import fraud_table
from training.metrics import (
    capacity_per_day,
    card_precision_at_k,
    precision_at_k,
    recall_at_k,
)

Y = np.array([1, 0, 1, 0, 0])
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5])


@pytest.mark.parametrize("k, precision, recall", [(1, 1.0, 0.5), (2, 0.5, 0.5), (3, 2 / 3, 1.0), (5, 0.4, 1.0)])
def test_precision_and_recall_at_k_count_positives_in_the_top_k(k, precision, recall):
    assert precision_at_k(Y, SCORES, k) == pytest.approx(precision)
    assert recall_at_k(Y, SCORES, k) == pytest.approx(recall)


def test_ties_go_to_the_lower_index():
    assert precision_at_k([0, 1], [0.5, 0.5], 1) == 0.0
    assert precision_at_k([1, 0], [0.5, 0.5], 1) == 1.0
    assert recall_at_k([0, 1, 1], [0.2, 0.2, 0.2], 2) == 0.5


def test_unused_capacity_counts_as_a_miss_when_k_exceeds_the_items():
    assert precision_at_k([1, 0], [0.9, 0.1], 4) == 0.25
    assert recall_at_k([1, 0], [0.9, 0.1], 4) == 1.0


def test_recall_is_undefined_without_positives():
    assert np.isnan(recall_at_k([0, 0, 0], [0.3, 0.2, 0.1], 2))


@pytest.mark.parametrize("scores, k", [([0.1, np.nan], 1), ([0.1, 0.2], 0)])
def test_top_k_refuses_nan_scores_and_k_below_one(scores, k):
    with pytest.raises(ValueError):
        precision_at_k([0, 1], scores, k)


# Day 1: A (0.9, fraud) and B (0.8) are flagged; A is caught. C is fraud but not flagged, so not caught.
# Day 2: A is gone; C's best row (0.6) leads and C is fraud that day through that row; D (0.5) is second.
# Day 3: only A, already caught: no account left, precision 0.
CARD = {
    "days":     [1, 1, 1, 1, 2, 2, 2, 2, 2, 3],
    "accounts": ["A", "B", "C", "D", "A", "C", "C", "D", "B", "A"],
    "y":        [1, 0, 1, 0, 1, 0, 1, 0, 0, 1],
    "scores":   [0.9, 0.8, 0.3, 0.1, 0.95, 0.2, 0.6, 0.5, 0.4, 0.99],
}


def test_card_precision_removes_accounts_caught_on_an_earlier_day():
    # day 1: {A, B} -> 1/2; day 2 without A: {C, D} -> 1/2 (with A it would be {A, C} -> 1); day 3: 0/2
    assert card_precision_at_k(**CARD, k=2) == pytest.approx((0.5 + 0.5 + 0.0) / 3)


def test_card_precision_keeps_accounts_flagged_but_not_fraudulent():
    # B is flagged on day 1 but clean, so it is still reviewed on day 2 when it turns fraudulent.
    assert card_precision_at_k([1, 2], ["B", "B"], [0, 1], [0.9, 0.9], k=1) == 0.5


def test_card_precision_ranks_accounts_by_their_best_score_that_day_and_breaks_ties_by_first_row():
    # X's best row (0.7) beats Y (0.6) although X's other row is the day's lowest.
    assert card_precision_at_k([1, 1, 1], ["X", "Y", "X"], [0, 0, 1], [0.1, 0.6, 0.7], k=1) == 1.0
    assert card_precision_at_k([1, 1], ["X", "Y"], [0, 1], [0.5, 0.5], k=1) == 0.0


@pytest.mark.parametrize("n_items, n_days, share, k", [(1000, 10, 0.05, 5), (3947, 49, 0.05, 4), (10, 100, 0.01, 1)])
def test_capacity_per_day_is_a_share_of_the_daily_volume_and_at_least_one(n_items, n_days, share, k):
    assert capacity_per_day(n_items, n_days, share) == k


@pytest.mark.parametrize("n_days, share", [(0, 0.1), (5, 0.0), (5, 1.5)])
def test_capacity_per_day_refuses_nonsense(n_days, share):
    with pytest.raises(ValueError):
        capacity_per_day(100, n_days, share)


labels = st.lists(st.integers(0, 1), min_size=1, max_size=60)


@st.composite
def ranked(draw):
    y = draw(labels)
    scores = draw(st.lists(st.floats(-1e6, 1e6), min_size=len(y), max_size=len(y)))
    k = draw(st.integers(1, 2 * len(y)))
    return np.array(y), np.array(scores), k


@settings(max_examples=200, deadline=None)
@given(ranked())
def test_precision_at_k_is_a_share(case):
    y, scores, k = case
    assert 0.0 <= precision_at_k(y, scores, k) <= 1.0


@settings(max_examples=200, deadline=None)
@given(ranked())
def test_recall_at_n_is_one_when_there_is_any_positive(case):
    y, scores, _ = case
    if y.any():
        assert recall_at_k(y, scores, len(y)) == 1.0


@settings(max_examples=200, deadline=None)
@given(ranked())
def test_perfect_scores_fill_the_top_k_with_positives(case):
    y, _, k = case
    assert precision_at_k(y, y.astype(float), k) == pytest.approx(min(k, y.sum()) / k)


@settings(max_examples=200, deadline=None)
@given(ranked(), st.integers(1, 5))
def test_card_precision_is_a_share_and_on_one_day_of_distinct_accounts_equals_precision_at_k(case, n_days):
    y, scores, k = case
    n = len(y)
    assert card_precision_at_k(np.zeros(n), np.arange(n), y, scores, k) == pytest.approx(precision_at_k(y, scores, k))
    days, accounts = np.arange(n) % n_days, np.arange(n) % 3
    assert 0.0 <= card_precision_at_k(days, accounts, y, scores, k) <= 1.0


def test_fifo_puts_the_earliest_first():
    assert list(np.argsort(-fifo_scores(np.array([30, 10, 20])), kind="stable")) == [1, 2, 0]


def test_rules_priority_multiplies_reporter_severity_and_capped_record():
    scores = rules_priority_from_weights(
        ["moderator", "buyer"], ["spam", "threats_of_harm"], np.array([0, 9]),
        {"moderator": 1.0, "buyer": 0.5}, {"spam": 0.25, "threats_of_harm": 1.0}, record_step=0.25, record_cap=4,
    )
    # top = 1 + 0.25 * 4 = 2; moderator spam, clean record: 100 * 0.25 / 2; buyer threats, record capped at 4: 100 * 0.5
    np.testing.assert_allclose(scores, [12.5, 50.0])


def test_fraud_table_gives_calibration_only_for_probabilities_and_shares_of_the_oracle():
    y = np.array([1, 0, 1, 0, 0, 0])
    model = np.array([0.8, 0.3, 0.4, 0.5, 0.1, 0.1])
    days, accounts = np.array([0, 0, 0, 1, 1, 1]), np.array(["a", "b", "c", "a", "d", "e"])
    out = fraud_table(y, {"fifo": (-np.arange(6.0), False), "model": (model, True), "oracle": (y * 0.9 + 0.05, True)},
                      days, accounts, review_share=1 / 3)
    assert (out["days"], out["k_per_day"], out["k"]) == (2, 1, 2)
    r = out["rankers"]
    assert list(r) == ["fifo", "model", "oracle"]
    assert r["fifo"]["brier"] is None and r["fifo"]["ece"] is None
    assert r["model"]["brier"] == pytest.approx(np.mean((model - y) ** 2))
    assert r["oracle"]["precision_at_k"] == 1.0 and r["model"]["precision_at_k"] == 0.5
    assert r["oracle"]["share_of_oracle_average_precision"] == 1.0
    assert r["model"]["share_of_oracle_average_precision"] == pytest.approx(r["model"]["average_precision"])
    # card precision, 1 account a day: day 0 the model picks a (fraud), day 1 a is caught, it picks d (not).
    assert r["model"]["card_precision_at_k"] == 0.5
