"""Calibrated LightGBM classifiers with per-row contributions.

Two estimators with the same small surface (`fit`, `predict_proba`,
`contributions`): a binary one calibrated by Platt scaling of the raw score and
a multiclass one calibrated by temperature scaling. Both calibrations are
monotone in the raw score, so ranking quality is untouched and LightGBM's own
contributions (in raw-score units) remain the honest explanation of a score.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from config.settings import passive_openmp_waits

passive_openmp_waits()  # before lightgbm is imported: see its docstring

import lightgbm as lgb  # noqa: E402
import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_softmax, softmax

from features.build import CATEGORICALS, as_matrix, as_model_input

ModelInput = pd.DataFrame | np.ndarray  # a frame, or features.build.as_matrix of its model's features

# Shallow trees and a slower rate: the labels are few (fraud: about a thousand positives at the default
# scale), and 31-leaf trees overfit them; on simulated data this raised fraud AP for reports and orders
# and also lowered the severity model's log loss.
DEFAULT_PARAMS: dict = {
    "learning_rate": 0.03,
    "num_leaves": 4,
    "min_child_samples": 40,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}


@dataclass
class BinaryModel:
    """LightGBM binary classifier + Platt scaling fitted on a later calibration window."""

    features: list[str]
    n_estimators: int = 400
    seed: int = 7
    num_threads: int = 2
    params: dict = field(default_factory=dict)
    refit: bool = False  # after calibrating, refit on the training and calibration rows together
    search: dict | None = None  # what chose `params` (training.tuning.SearchResult.as_dict), if a search did

    def fit(self, X: ModelInput, y: np.ndarray, X_cal: ModelInput, y_cal: np.ndarray) -> "BinaryModel":
        """Fit on (X, y), calibrate on the later (X_cal, y_cal); with `refit`, the booster is then refitted on
        both with the same parameters and rounds, so the calibration rows, the freshest, are not lost to the
        model. The Platt map learnt on the first booster is kept: the refit sees 1/7 more rows of the same
        kind, and its raw scores stay on the scale the map was fitted to (order ECE 0.005 with it)."""
        params = self.lgb_params()
        self.booster_ = train_booster(params, X, y, self.features, self.n_estimators)
        self.platt_ = _fit_platt(self.raw(X_cal), np.asarray(y_cal, dtype=float))
        if self.refit:
            both = np.vstack([_matrix(X, self.features), _matrix(X_cal, self.features)])
            self.booster_ = train_booster(params, both, np.concatenate([np.asarray(y), np.asarray(y_cal)]),
                                          self.features, self.n_estimators)
        return self

    def lgb_params(self) -> dict:
        """Everything LightGBM is given: the defaults, this model's own parameters, and what is fixed."""
        return {**DEFAULT_PARAMS, **self.params, "objective": "binary", "seed": self.seed,
                "num_threads": self.num_threads}

    def raw(self, X: ModelInput) -> np.ndarray:
        return self.booster_.predict(_input(X, self.features), raw_score=True, num_threads=self.num_threads)

    @property
    def slope(self) -> float:
        """d(calibrated logit) / d(raw score): how far one unit of contribution moves the probability."""
        return self.platt_[0]

    def predict_proba(self, X: ModelInput) -> np.ndarray:
        """Calibrated probability of the positive class, shape (n,)."""
        a, b = self.platt_
        return expit(a * self.raw(X) + b)

    def contributions(self, X: ModelInput) -> np.ndarray:
        """Per-feature raw-score contributions, shape (n, n_features) (expected value dropped)."""
        return self.booster_.predict(_input(X, self.features), pred_contrib=True, num_threads=self.num_threads)[:, :-1]


@dataclass
class MulticlassModel:
    """LightGBM multiclass classifier + temperature scaling on a later calibration window."""

    features: list[str]
    classes: list[str]
    n_estimators: int = 250
    seed: int = 7
    num_threads: int = 2
    params: dict = field(default_factory=dict)

    def fit(self, X: ModelInput, y: np.ndarray, X_cal: ModelInput, y_cal: np.ndarray) -> "MulticlassModel":
        params = {**DEFAULT_PARAMS, **self.params, "objective": "multiclass", "num_class": len(self.classes),
                  "seed": self.seed, "num_threads": self.num_threads}
        self.booster_ = train_booster(params, X, y, self.features, self.n_estimators)
        self.temperature_ = _fit_temperature(self.raw(X_cal), np.asarray(y_cal, dtype=int))
        return self

    def raw(self, X: ModelInput) -> np.ndarray:
        return self.booster_.predict(_input(X, self.features), raw_score=True, num_threads=self.num_threads).reshape(len(X), len(self.classes))

    def predict_proba(self, X: ModelInput) -> np.ndarray:
        """Calibrated class probabilities, shape (n, n_classes), rows summing to 1."""
        return softmax(self.raw(X) / self.temperature_, axis=1)

    def contributions(self, X: ModelInput, cls: np.ndarray) -> np.ndarray:
        """Contributions toward each row's class `cls` (index), shape (n, n_features)."""
        k, f = len(self.classes), len(self.features) + 1
        contrib = self.booster_.predict(_input(X, self.features), pred_contrib=True, num_threads=self.num_threads).reshape(len(X), k, f)
        return contrib[np.arange(len(X)), np.asarray(cls, dtype=int), :-1]


def train_booster(params: dict, X: ModelInput, y: np.ndarray, features: list[str], rounds: int) -> lgb.Booster:
    """lgb.train on the matrix of X (a frame is converted with as_matrix): the same Dataset LightGBM builds
    from the frame itself (names, categorical columns, their vocabularies for predicting from frames), but a
    caller fitting several models on the same rows converts them once, and the rows are not kept converted
    twice (at 1M reports the frame conversion was a 460 MB copy per fit)."""
    matrix = _matrix(X, features)
    cats = [f for f in features if f in CATEGORICALS]
    data = lgb.Dataset(matrix, label=y, feature_name=list(features),
                       categorical_feature=[features.index(f) for f in cats])
    booster = lgb.train(params, data, num_boost_round=rounds)
    booster.pandas_categorical = [list(CATEGORICALS[f]) for f in cats]
    return booster


def _matrix(X: ModelInput, features: list[str]) -> np.ndarray:
    matrix = _input(X, features)
    return matrix if isinstance(matrix, np.ndarray) else as_matrix(matrix)


def _input(X: ModelInput, features: list[str]) -> pd.DataFrame | np.ndarray:
    """What the booster predicts from: a prepared matrix as it is, a frame's model columns on the vocabulary."""
    if isinstance(X, np.ndarray):
        if X.shape[1] != len(features):
            raise ValueError(f"a prepared matrix has {X.shape[1]} columns; the model takes {len(features)}")
        return X
    return as_model_input(X[features])


def _fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept mapping raw score to a calibrated logit (identity if one class only)."""
    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _fit_temperature(raw: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature minimising log loss on the calibration window."""
    if len(y) == 0:
        return 1.0

    def nll(temp: float) -> float:
        return -float(np.mean(log_softmax(raw / temp, axis=1)[np.arange(len(y)), y]))

    return float(minimize_scalar(nll, bounds=(0.25, 8.0), method="bounded").x)
