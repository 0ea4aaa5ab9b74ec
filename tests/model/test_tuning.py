"""The fraud models' hyperparameter search (training.tuning) and refitting after calibration."""
from __future__ import annotations

import numpy as np
import pytest

from training import tuning
from training.models import DEFAULT_PARAMS, BinaryModel, train_booster

FEATURES = ["a", "b", "c", "d"]


def _rows(n: int, seed: int = 0, positive_rate: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose label depends on two features and their interaction, plus noise features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURES)))
    logit = 1.5 * X[:, 0] + X[:, 1] * X[:, 0] + np.log(positive_rate / (1 - positive_rate))
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)


def test_draws_are_seeded_distinct_inside_the_space_and_never_the_defaults():
    first, again, other = tuning.draws(7), tuning.draws(7), tuning.draws(11)
    assert first == again and first != other
    assert len(first) == tuning.DRAWS and first[0] != first[1]
    defaults = {k: DEFAULT_PARAMS[k] for k in tuning.SPACE}
    for cand in first + other:
        assert cand != defaults
        assert all(cand[k] in values for k, values in tuning.SPACE.items())


@pytest.mark.parametrize("aps, winner", [
    ([[0.30, 0.40, 0.50], [0.31, 0.41, 0.51], [0.29, 0.60, 0.70]], 1),  # the better mean lost one origin
    ([[0.30, 0.40, 0.50], [0.31, 0.41, 0.51], [0.35, 0.45, 0.55]], 2),  # both beat it everywhere: best mean
    ([[0.30, 0.40, 0.50], [0.30, 0.41, 0.51]], None),  # a tie at one origin is not a win
    ([[0.30, 0.40], [0.35, 0.45], [0.35, 0.45]], 1),  # equal draws: the earlier
])
def test_a_draw_replaces_the_defaults_only_by_beating_them_at_every_origin(aps, winner):
    assert tuning.choose(aps) == winner


def test_the_search_is_seeded_respects_its_budget_and_its_choice_obeys_the_rule():
    X, y = _rows(tuning.MAX_ROWS + 4_000)
    base = BinaryModel(FEATURES, num_threads=2).lgb_params()
    result = tuning.search(X, y, FEATURES, base, 60, seed=7, threads=2)
    assert result.as_dict() == tuning.search(X, y, FEATURES, base, 60, seed=7, threads=2).as_dict()
    # Fits run in parallel, one thread each: how many at once changes nothing.
    assert result.as_dict() == tuning.search(X, y, FEATURES, base, 60, seed=7, threads=1).as_dict()
    assert result.rows == tuning.MAX_ROWS and result.origins == tuning.ORIGINS
    assert len(result.candidates) == 1 + tuning.DRAWS
    assert result.candidates[0]["params"] == "defaults"
    assert all(len(c["ap_per_origin"]) == tuning.ORIGINS for c in result.candidates)
    aps = [c["ap_per_origin"] for c in result.candidates]
    assert result.params == ({} if tuning.choose(aps) is None else tuning.draws(7)[tuning.choose(aps) - 1])


def test_too_few_positives_keep_the_defaults_and_say_why():
    X, y = _rows(2_000, positive_rate=0.001)
    y[:] = 0
    y[:3] = 1
    result = tuning.search(X, y, FEATURES, BinaryModel(FEATURES).lgb_params(), 20, seed=7, threads=1)
    assert result.params == {} and result.candidates == []
    assert "too few positives" in result.reason


def test_refit_learns_again_from_the_calibration_rows_and_keeps_the_calibration_map():
    X, y = _rows(6_000, seed=1)
    X_cal, y_cal = _rows(1_000, seed=2)
    plain = BinaryModel(FEATURES, n_estimators=50, num_threads=1).fit(X, y, X_cal, y_cal)
    refit = BinaryModel(FEATURES, n_estimators=50, num_threads=1, refit=True).fit(X, y, X_cal, y_cal)
    assert refit.platt_ == plain.platt_  # the map was learnt before the refit, on held-out rows
    both = train_booster(refit.lgb_params(), np.vstack([X, X_cal]), np.concatenate([y, y_cal]), FEATURES, 50)
    np.testing.assert_allclose(refit.raw(X_cal), both.predict(X_cal, raw_score=True), rtol=0, atol=1e-12)
    assert not np.allclose(refit.raw(X_cal), plain.raw(X_cal))
