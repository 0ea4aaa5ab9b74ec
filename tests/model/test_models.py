"""The classifiers train from LightGBM's matrix of the features, exactly as LightGBM trains from the frame."""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from features.build import REPORT_FEATURES, as_matrix, as_model_input, report_features
from features.history import History
from training.models import DEFAULT_PARAMS, BinaryModel, MulticlassModel


@pytest.fixture(scope="module")
def report_rows(tables):
    reports = tables["reports"].head(4000).reset_index(drop=True)
    X = report_features(reports, History.from_tables(tables))
    rng = np.random.default_rng(0)
    return X, rng.integers(0, 2, len(X)), rng.integers(0, 4, len(X))


def _booster_from_frame(X, y, params):
    return lgb.train(params, lgb.Dataset(as_model_input(X[list(REPORT_FEATURES)]), label=y), num_boost_round=30)


@pytest.mark.parametrize("multiclass", [False, True])
def test_model_from_matrix_is_the_model_lightgbm_trains_from_the_frame(report_rows, multiclass):
    X, y_binary, y_classes = report_rows
    cols = list(REPORT_FEATURES)
    if multiclass:
        model = MulticlassModel(cols, ["a", "b", "c", "d"], n_estimators=30)
        y, objective = y_classes, {"objective": "multiclass", "num_class": 4}
    else:
        model, y, objective = BinaryModel(cols, n_estimators=30), y_binary, {"objective": "binary"}
    model.fit(as_matrix(X[cols]), y, X, y)
    reference = _booster_from_frame(X, y, {**DEFAULT_PARAMS, **objective, "seed": model.seed,
                                           "num_threads": model.num_threads})
    assert "[categorical_feature: 0,1,2,3]" in reference.model_to_string()  # the string says what is categorical
    assert model.booster_.model_to_string() == reference.model_to_string()
    assert np.array_equal(model.raw(X), model.raw(as_matrix(X[cols])))


def test_model_fitted_on_a_frame_equals_model_fitted_on_its_matrix(report_rows):
    X, y, _ = report_rows
    cols = list(REPORT_FEATURES)
    from_frame = BinaryModel(cols, n_estimators=30).fit(X, y, X, y)
    from_matrix = BinaryModel(cols, n_estimators=30).fit(as_matrix(X[cols]), y, as_matrix(X[cols]), y)
    assert from_frame.booster_.model_to_string() == from_matrix.booster_.model_to_string()
    assert from_frame.platt_ == from_matrix.platt_
