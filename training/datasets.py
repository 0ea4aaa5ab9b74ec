"""Labelled training sets and the temporal split.

Labels come only from rows whose label is known by the end of the data: review
outcomes for reports, and for orders only those old enough that a chargeback
would have arrived (`ORDER_LABEL_MATURITY_DAYS`), since a recent order without
a fraud flag is not yet known to be clean.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.build import History, order_features, report_features
from features.history import DAY, seconds
from training.bundles import severity_labels

ORDER_LABEL_MATURITY_DAYS = 60
SPLIT = (0.7, 0.1, 0.2)  # train, calibration, validation: in time order


@dataclass
class Labelled:
    ids: np.ndarray
    times: np.ndarray
    X: pd.DataFrame
    labels: dict[str, np.ndarray]

    def take(self, mask: np.ndarray) -> "Labelled":
        return Labelled(self.ids[mask], self.times[mask], self.X[mask].reset_index(drop=True),
                        {k: v[mask] for k, v in self.labels.items()})


def labelled_reports(tables: dict[str, pd.DataFrame], history: History) -> Labelled:
    """Every reviewed report with its features at filing time and its review labels."""
    reports = tables["reports"].merge(tables["outcomes"], on="report_id", how="inner")
    reports = reports.sort_values(["created_at", "report_id"], kind="stable").reset_index(drop=True)
    return Labelled(
        ids=reports["report_id"].to_numpy(object),
        times=seconds(reports["created_at"]),
        X=report_features(reports, history),
        labels={
            "valid": reports["valid"].to_numpy(bool).astype(int),
            "severity": severity_labels(reports["severity"]),
            "fraud": reports["fraud_confirmed"].to_numpy(bool).astype(int),
        },
    )


def labelled_orders(tables: dict[str, pd.DataFrame], history: History) -> Labelled:
    """Orders old enough for their fraud label to be trusted, with features at order time."""
    orders = tables["orders"]
    end = int(max(seconds(orders["created_at"]).max(), seconds(tables["reports"]["created_at"]).max()
                  if "reports" in tables and len(tables["reports"]) else 0))
    mature = seconds(orders["created_at"]) <= end - ORDER_LABEL_MATURITY_DAYS * DAY
    orders = orders[mature].sort_values(["created_at", "order_id"], kind="stable").reset_index(drop=True)
    return Labelled(
        ids=orders["order_id"].to_numpy(object),
        times=seconds(orders["created_at"]),
        X=order_features(orders, history),
        labels={"fraud": orders["fraud"].to_numpy(bool).astype(int)},
    )


def temporal_split(times: np.ndarray, fractions: tuple[float, float, float] = SPLIT) -> tuple[np.ndarray, ...]:
    """Masks for train / calibration / validation cut at time quantiles, so each part is later than the last."""
    c1, c2 = np.quantile(times, [fractions[0], fractions[0] + fractions[1]])
    return times < c1, (times >= c1) & (times < c2), times >= c2
