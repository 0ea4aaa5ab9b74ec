"""Metric functions shared by training and evaluation (pure: arrays in, floats out)."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, cohen_kappa_score, f1_score, log_loss, roc_auc_score


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
