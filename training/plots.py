"""Figures logged with every training run: people read these rather than tables."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import precision_recall_curve  # noqa: E402


def precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """One precision-recall curve per (label, scores) pair, with the positive rate as the chance line."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (y, p) in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=f"{name} (base rate {np.mean(y):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall on the validation window", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration(curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> plt.Figure:
    """Reliability diagram: predicted probability against the observed rate."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    for name, (y, p) in curves.items():
        obs, pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(pred, obs, marker="o", ms=3, label=name)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration on the validation window")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def importance(names: list[str], gains: np.ndarray, title: str, top: int = 20) -> plt.Figure:
    """Top features by total gain."""
    order = np.argsort(gains)[::-1][:top][::-1]
    fig, ax = plt.subplots(figsize=(6, 0.28 * len(order) + 1))
    ax.barh([names[i] for i in order], gains[order])
    ax.set(xlabel="total gain", title=title)
    fig.tight_layout()
    return fig
