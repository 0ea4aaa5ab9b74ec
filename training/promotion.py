"""Challenger against champion on the same recent held-out window, and the promotion rule.

Both registered pairs (docket-severity + docket-fraud) score the same reports and orders, from a
window neither of them trained on: it starts at the later of the two training runs' test
windows. The guarded figures are the ones a worse model would hurt people with: average
precision (fraud per report and per order, validity), calibration (expected calibration error of
the same three), and the queue's share of valid cases that miss their response-time goal when a
team with capacity equal to the arrivals replays the window. `decide` is pure: the challenger is
promoted only if no guarded figure is worse than the champion's by more than its tolerance.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from training import rankers as R
from training.bundles import FraudBundle, SeverityBundle
from training.evaluation import QueueRules, binary_figures, queue_replay
from training.evaluation_data import Prepared, order_split, report_split
from training.windows import Windows

HIGHER, LOWER = "higher is better", "lower is better"


@dataclass(frozen=True)
class Tolerances:
    """How much worse than the champion a challenger may be on each kind of guarded figure (absolute)."""

    average_precision: float = 0.01
    calibration_ece: float = 0.01
    missed_goal_share: float = 0.01


GUARDED: dict[str, tuple[str, str]] = {  # figure -> (direction, tolerance field)
    "fraud_reports.average_precision": (HIGHER, "average_precision"),
    "fraud_orders.average_precision": (HIGHER, "average_precision"),
    "validity.average_precision": (HIGHER, "average_precision"),
    "fraud_reports.ece": (LOWER, "calibration_ece"),
    "fraud_orders.ece": (LOWER, "calibration_ece"),
    "validity.ece": (LOWER, "calibration_ece"),
    "queue.missed_goal_share": (LOWER, "missed_goal_share"),
}


@dataclass(frozen=True)
class Check:
    figure: str
    champion: float
    challenger: float
    tolerance: float
    direction: str

    @property
    def worse_by(self) -> float:
        """How much worse the challenger is (negative when better)."""
        gap = self.champion - self.challenger
        return gap if self.direction == HIGHER else -gap

    @property
    def passed(self) -> bool:
        return self.worse_by <= self.tolerance + 1e-12


@dataclass(frozen=True)
class Decision:
    promote: bool
    forced: bool
    reason: str
    checks: tuple[Check, ...]

    def as_dict(self) -> dict:
        return {"promote": self.promote, "forced": self.forced, "reason": self.reason,
                "checks": [{**asdict(c), "worse_by": c.worse_by, "passed": c.passed} for c in self.checks]}


def decide(champion: dict[str, float], challenger: dict[str, float], tolerances: Tolerances,
           force: bool = False) -> Decision:
    """Promote unless a guarded figure got worse beyond its tolerance; `force` promotes anyway, and says so."""
    checks = tuple(
        Check(name, champion[name], challenger[name], getattr(tolerances, field), direction)
        for name, (direction, field) in GUARDED.items() if name in champion and name in challenger
    )
    if not checks:
        raise ValueError("no guarded figure could be measured for both models on this window")
    failed = [c for c in checks if not c.passed]
    if not failed:
        return Decision(True, force, "no guarded figure is worse beyond its tolerance", checks)
    worst = "; ".join(f"{c.figure} {c.champion:.4f} -> {c.challenger:.4f} (worse by {c.worse_by:.4f}, "
                      f"tolerance {c.tolerance:.4f})" for c in failed)
    if force:
        return Decision(True, True, f"forced despite: {worst}", checks)
    return Decision(False, False, f"challenger worse beyond tolerance: {worst}", checks)


def guarded_figures(severity: SeverityBundle, fraud: FraudBundle, prep: Prepared, windows: Windows,
                    rules: QueueRules) -> dict[str, float]:
    """The guarded figures of one registered pair on the window's test part (nothing is refitted)."""
    out: dict[str, float] = {}
    if prep.reports is not None:
        test = report_split(prep.reports, windows).test
        if len(test):
            models = R.ReportModels(severity.validity, severity.severity, fraud.report)
            p_valid, sev, p_fraud = (models.validity.predict_proba(test.X), models.severity.predict_proba(test.X),
                                     models.fraud.predict_proba(test.X))
            done = test.labels["resolved"]
            for task, y, p in (("fraud_reports", test.labels["fraud"][done], p_fraud[done]),
                               ("validity", test.labels["valid"][done], p_valid[done])):
                m = binary_figures(y, p, True)
                out[f"{task}.average_precision"], out[f"{task}.ece"] = m["average_precision"], m["ece"]
            scores = {R.MODEL: R.from_probabilities(p_valid, sev, p_fraud)}
            queue, _ = queue_replay(test, scores, rules, windows, (1.0,))
            out["queue.missed_goal_share"] = queue["urgent"][0]["goal_missed_share"]
    if prep.orders is not None:
        test = order_split(prep.orders, windows, prep.data_end).test
        if len(test) and test.labels["fraud"].any():
            m = binary_figures(test.labels["fraud"], fraud.order.predict_proba(test.X), True)
            out["fraud_orders.average_precision"], out["fraud_orders.ece"] = m["average_precision"], m["ece"]
    return {k: float(v) for k, v in out.items() if v is not None and np.isfinite(v)}


def holdout_windows(first_untrained: pd.Timestamp, data_end: pd.Timestamp, label_delay_days: int) -> Windows:
    """A window whose test part starts where neither model has trained (the training part is unused)."""
    return Windows(first_untrained - pd.Timedelta(days=1), first_untrained, first_untrained,
                   data_end + pd.Timedelta(microseconds=1), label_delay_days)
