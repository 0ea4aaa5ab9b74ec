"""Baselines that rank the same test window as the models, so every metric compares like with like.

Each function returns one score per row, higher = act first. A model is only
worth its complexity if it beats what a queue would do without it: first in,
first out; the policy's rules; a plain logistic regression; a depth-2 tree on
the raw report fields. The oracle (the simulator's true probabilities) is the
ceiling, so a model's average precision can be read as a share of what is
possible; training.evaluation puts them side by side on one test window.

The rules baseline is the live queue's rules-only priority itself (policy.queue.rules_priority).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from policy.queue import rules_priority

RAW_REPORT_FIELDS = ["reporter_type", "channel", "category"]
ORACLE = "oracle"



def fifo_scores(created_at_seconds: np.ndarray) -> np.ndarray:
    """First in, first out: the earliest item scores highest (the negated creation time)."""
    return -np.asarray(created_at_seconds, float)





rules_scores = rules_priority  # the rules ranker: the live queue's rules-only priority (reports, features, policy)


def _categorical_columns(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype) or X[c].dtype == object]


def _finite(X: pd.DataFrame) -> pd.DataFrame:
    """Infinite ratios (x / 0) become missing, so the imputer treats them like any other gap."""
    return X.astype(float).replace([np.inf, -np.inf], np.nan)


def logistic_regression_pipeline(X: pd.DataFrame, seed: int) -> Pipeline:
    """Numeric columns: inf -> NaN, median imputation, standard scaling; categorical columns: one-hot.

    A column with no value in training (a rate nobody has yet) is kept as a constant
    instead of being dropped with a warning: it carries no signal either way.
    """
    categorical = _categorical_columns(X)
    numeric = [c for c in X.columns if c not in categorical]
    prepare = ColumnTransformer([
        ("numeric", make_pipeline(FunctionTransformer(_finite, feature_names_out="one-to-one"),
                                  SimpleImputer(strategy="median", keep_empty_features=True),
                                  StandardScaler()), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])
    return make_pipeline(prepare, LogisticRegression(max_iter=2000, random_state=seed))


def logistic_regression_scores(X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame,
                               seed: int) -> np.ndarray:
    """P(y = 1) from a logistic regression on all features: the simplest model that uses them all."""
    return logistic_regression_proba(X_train, y_train, X_test, seed, n_classes=2)[:, 1]


def logistic_regression_proba(X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, seed: int,
                              n_classes: int) -> np.ndarray:
    """Class probabilities (n, n_classes) from a (multinomial) logistic regression on all features.

    BLAS runs on one thread here: lbfgs multiplies a tall matrix by a few coefficient columns, too little
    work to split, and OpenBLAS's spinning second thread made the fits 4-10x slower (profiled at 1M reports:
    the multinomial fit on 50,000 rows took 12-30 s in OpenBLAS's thread loop, 2.8 s on one thread).
    """
    with threadpool_limits(limits=1, user_api="blas"):
        pipe = logistic_regression_pipeline(X_train, seed).fit(_as_str(X_train), np.asarray(y_train))
        return _all_classes(pipe.predict_proba(_as_str(X_test)), pipe.classes_, n_classes)


def _all_classes(proba: np.ndarray, seen: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities for every class 0..n-1, zero for a class training never saw."""
    out = np.zeros((len(proba), n_classes))
    out[:, np.asarray(seen, int)] = proba
    return out


def _as_str(X: pd.DataFrame) -> pd.DataFrame:
    """Categoricals as plain strings, so one-hot columns do not depend on the category dtype's levels."""
    return X.astype({c: str for c in _categorical_columns(X)})


def depth2_tree_scores(train_raw: pd.DataFrame, y_train: np.ndarray, test_raw: pd.DataFrame) -> np.ndarray:
    """P(y = 1) from a depth-2 tree on the raw report fields alone (reporter type, channel, category).

    What a reviewer could learn from the intake form in two questions; the bar the
    history features must clear.
    """
    return depth2_tree_proba(train_raw, y_train, test_raw, n_classes=2)[:, 1]


def depth2_tree_proba(train_raw: pd.DataFrame, y_train: np.ndarray, test_raw: pd.DataFrame,
                      n_classes: int) -> np.ndarray:
    """Class probabilities (n, n_classes) from the depth-2 tree on the raw report fields."""
    enc = OneHotEncoder(handle_unknown="ignore")
    Xtr = enc.fit_transform(train_raw[RAW_REPORT_FIELDS].astype(str))
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(Xtr, np.asarray(y_train))
    proba = tree.predict_proba(enc.transform(test_raw[RAW_REPORT_FIELDS].astype(str)))
    return _all_classes(proba, tree.classes_, n_classes)


def depth2_feature_tree_scores(train_parts: Sequence[pd.DataFrame], y_train: np.ndarray,
                               X_test: pd.DataFrame) -> np.ndarray:
    """P(y = 1) from a depth-2 tree over all features (categoricals as codes, gaps left to the tree); the
    training rows are the parts' rows in order.

    For orders, which have no intake form: the best two questions about the order and its accounts.
    """
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(_codes(train_parts), np.asarray(y_train))
    return _all_classes(tree.predict_proba(_codes([X_test])), tree.classes_, 2)[:, 1]


def _codes(parts: Sequence[pd.DataFrame]) -> np.ndarray:
    """Numbers a tree can split, the parts' rows stacked: categoricals as their codes (missing -1), infinities
    as missing. float32, which sklearn's trees convert any input to, filled column by column: at 1.2M
    training orders, concatenating the parts and converting through float64 frames peaked at 8 GB."""
    columns = list(parts[0].columns)
    out = np.empty((sum(len(p) for p in parts), len(columns)), dtype=np.float32)
    start = 0
    for part in parts:
        for j, c in enumerate(columns):
            col = part[c]
            values = (col.cat.codes if isinstance(col.dtype, pd.CategoricalDtype) else col).to_numpy(np.float64)
            out[start:start + len(part), j] = np.where(np.isinf(values), np.nan, values)
        start += len(part)
    return out


def oracle_scores(truth_probabilities: np.ndarray) -> np.ndarray:
    """The simulator's true probabilities (e.g. truth_reports.p_fraud): the best ranking any model can reach.

    Only simulated data has them; align them to the rows being ranked before calling.
    """
    p = np.asarray(truth_probabilities, float)
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError("truth probabilities must be in [0, 1] with no gaps (were they aligned to the rows?)")
    return p
