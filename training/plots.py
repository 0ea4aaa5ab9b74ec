"""Figures logged with every training run: people read these rather than tables."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.metrics import average_precision_score, precision_recall_curve  # noqa: E402


def precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                     title: str = "Precision-recall on the validation window") -> plt.Figure:
    """One precision-recall curve per (label, scores) pair, with the positive rate as the chance line."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, (y, p) in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=f"{name} (AP {average_precision_score(y, p):.3f}, base rate {np.mean(y):.3f})")
    ax.set(xlabel="recall", ylabel="precision", title=title, ylim=(0, 1.02))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def calibration(curves: dict[str, tuple[np.ndarray, np.ndarray]],
                title: str = "Calibration on the validation window") -> plt.Figure:
    """Reliability diagram: predicted probability against the observed rate."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect")
    for name, (y, p) in curves.items():
        obs, pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(pred, obs, marker="o", ms=3, label=name)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title=title)
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


def queue_replay(urgent: pd.DataFrame) -> plt.Figure:
    """Mean and p90 time to action of valid high/critical cases, per ordering, at each team capacity.

    `urgent` has one row per capacity x ordering (training.evaluation.queue_replay's headline).
    """
    caps = sorted(urgent["capacity"].unique())
    names = list(dict.fromkeys(urgent["ordering"]))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j, name in enumerate(names):
        rows = urgent[urgent["ordering"] == name].set_index("capacity").loc[caps]
        x = np.arange(len(caps)) + (j - (len(names) - 1) / 2) * width
        ax.bar(x, rows["urgent_mean_minutes"] / 60, width, label=name)
        ax.plot(x, rows["urgent_p90_minutes"] / 60, "k_", ms=8)
    ax.set_xticks(np.arange(len(caps)), [f"{c:.0%} of arrivals" for c in caps])
    ax.set(yscale="log", ylabel="hours to action (bar: mean, tick: p90)",
           title="Queue replay: valid high and critical cases")
    ax.legend(fontsize=8, ncols=2)
    fig.tight_layout()
    return fig


def across_folds(values: dict[str, list[float]], metric: str) -> plt.Figure:
    """One line per ranker: a metric on each rolling-origin fold, so the spread is visible."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in values.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, marker="o", label=name)
    ax.set(xlabel="fold (later is more recent)", ylabel=metric, title=f"{metric} per fold")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
