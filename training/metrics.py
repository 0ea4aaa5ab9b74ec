"""Metric functions shared by training and evaluation (pure: arrays in, floats out)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    cohen_kappa_score,
    f1_score,
    log_loss,
    roc_auc_score,
)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean prediction| over equal-width probability bins, weighted by bin size."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    idx = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            total += m.sum() * abs(y[m].mean() - p[m].mean())
    return float(total / max(len(y), 1))


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """ROC AUC, average precision, Brier score and ECE (NaN for AUC/AP when one class only)."""
    both = len(np.unique(y)) == 2
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "average_precision": float(average_precision_score(y, p)) if both else float("nan"),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "positive_rate": float(np.mean(y)),
    }


def multiclass_metrics(y: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Macro F1, quadratic weighted kappa (severity is ordinal) and log loss."""
    pred = probs.argmax(axis=1)
    labels = list(range(probs.shape[1]))
    return {
        "macro_f1": float(f1_score(y, pred, average="macro", labels=labels)),
        "quadratic_kappa": float(cohen_kappa_score(y, pred, weights="quadratic", labels=labels)),
        "log_loss": float(log_loss(y, probs, labels=labels)),
    }


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores; ties go to the lower index, so the same input always picks the same items.

    A stable sort of the negated scores keeps equal scores in index order. NaN scores
    are refused: a NaN has no place in a ranking and would silently sink to the end.
    """
    scores = np.asarray(scores, float)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; rank only scored items")
    return np.argsort(-scores, kind="stable")[:k]


def precision_at_k(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Positives among the k highest-scored items, divided by k.

    k is the review capacity: what a team can act on. When k exceeds the number of
    items the unused capacity counts as misses (the denominator stays k), the same
    convention as `card_precision_at_k`, so a perfect ranking scores min(k, positives) / k.
    """
    y = np.asarray(y)
    return float(y[_top_k(scores, k)].sum() / k)


def recall_at_k(y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Share of all positives that land in the k highest-scored items (NaN when there is no positive)."""
    y = np.asarray(y)
    positives = y.sum()
    return float(y[_top_k(scores, k)].sum() / positives) if positives else float("nan")


def capacity_per_day(n_items: int, n_days: int, share: float) -> int:
    """Items a team can review per day if it reviews `share` of the average daily volume (at least 1).

    Gives the k for `card_precision_at_k` (and, times the number of days, for
    `precision_at_k`) from a window's size, so capacity scales with the data
    instead of being a magic number.
    """
    if n_days < 1 or not 0 < share <= 1:
        raise ValueError(f"need n_days >= 1 and 0 < share <= 1, got {n_days}, {share}")
    return max(1, round(share * n_items / n_days))


def card_precision_at_k(days: np.ndarray, accounts: np.ndarray, y: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Card precision top-k (Fraud Detection Handbook, Le Borgne et al., ch. 4) with accounts for cards.

    Investigators review accounts, not single transactions, and can review only k a day:
      1. For each day d (in sorted order), keep that day's rows whose account has not been caught
         on an earlier day.
      2. Per account: its score is the highest score of its rows that day, and it is fraudulent
         that day if any of its rows that day has y = 1.
      3. Take the k accounts with the highest scores (ties to the account whose first row comes
         first in the input, as in `precision_at_k`).
      4. The day's precision is the number of fraudulent accounts among them divided by k (a day
         with fewer than k accounts still divides by k: unused capacity is not a hit).
      5. Accounts that were in that day's top k AND fraudulent that day are caught: they are
         removed from every later day, since a blocked account raises no new alerts.
    The result is the mean of the daily precisions over every day that has rows in the input
    (a day whose accounts were all caught before counts as 0).
    """
    frame = pd.DataFrame({"day": np.asarray(days), "account": np.asarray(accounts),
                          "y": np.asarray(y).astype(int), "score": np.asarray(scores, float)})
    if frame["score"].isna().any():
        raise ValueError("scores contain NaN; rank only scored items")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    frame["row"] = np.arange(len(frame))
    # One aggregation for all days, ordered within each day as step 3 ranks; then one pass over days.
    per = frame.groupby(["day", "account"], sort=False).agg(score=("score", "max"), y=("y", "max"),
                                                            first=("row", "min")).reset_index()
    per = per.sort_values(["day", "score", "first"], ascending=[True, False, True], kind="stable")
    day = per["day"].to_numpy()
    account, fraud = per["account"].to_numpy(), per["y"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, day[1:] != day[:-1], True])
    caught: set = set()
    daily: list[float] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        top = [i for i in range(lo, hi) if account[i] not in caught][:k]
        hits = [account[i] for i in top if fraud[i] == 1]
        daily.append(len(hits) / k)
        caught.update(hits)
    return float(np.mean(daily)) if daily else float("nan")
