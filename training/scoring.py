"""Scoring reports with the registered models: scores, priority, reasons, ranking.

Plain Python so the service, the evaluation and the tests share one scorer. The
priority is the expected harm of acting late: how likely the report is valid,
weighted by how severe it would be, combined with the chance of fraud. Ranking
breaks ties by filing time, then report id, so the same input always yields the
same order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from config import settings as S
from features import vocabulary as V
from features.build import Reports, as_model_input, columns_matrix, report_columns
from features.history import History
from features.streams import values_of
from training.registry import Loaded

# Weight of each severity in the priority: a critical report is worth four low ones.
SEVERITY_WEIGHTS = {"low": 0.25, "medium": 0.5, "high": 0.75, "critical": 1.0}
TOP_REASONS = 5


def priority(p_valid: np.ndarray, severity_probs: np.ndarray, fraud_risk: np.ndarray) -> np.ndarray:
    """0-100: 100 x P(harm), where harm is a valid report weighted by severity, or fraud."""
    weights = np.array([SEVERITY_WEIGHTS[s] for s in V.SEVERITIES])
    behavioural = p_valid * (severity_probs @ weights)
    return np.round(100.0 * (1.0 - (1.0 - behavioural) * (1.0 - fraud_risk)), 4)


def rank_order(scored: list[dict]) -> list[dict]:
    """Highest priority first; ties by earlier created_at, then report_id."""
    return sorted(scored, key=lambda r: (-r["priority"], r["created_at"], r["report_id"]))


def _json_value(v) -> float | str | None:
    if isinstance(v, (float, np.floating)):
        return None if np.isnan(v) else float(v)
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return v if isinstance(v, str) else float(v)


Columns = dict[str, "np.ndarray | pd.Categorical"]


def _matrices(columns: Columns, models: tuple) -> tuple[np.ndarray, ...]:
    """Each model's features as a LightGBM matrix, built once per distinct feature list rather than once per
    model call (LightGBM's own frame conversion costs more than predicting a few rows)."""
    by_features: dict[tuple[str, ...], np.ndarray] = {}
    for m in models:
        if tuple(m.features) not in by_features:
            by_features[tuple(m.features)] = columns_matrix(columns, m.features)
    return tuple(by_features[tuple(m.features)] for m in models)


def _frame_columns(X: pd.DataFrame) -> Columns:
    """A feature frame's columns, categoricals on the fixed vocabulary (as the models saw them)."""
    X = as_model_input(X)
    return {c: X[c].array if isinstance(X[c].dtype, pd.CategoricalDtype) else X[c].to_numpy() for c in X.columns}


@dataclass(frozen=True)
class Scorer:
    severity: Loaded
    fraud: Loaded

    @property
    def model_versions(self) -> dict[str, str]:
        return {S.SEVERITY_MODEL: self.severity.version, S.FRAUD_MODEL: self.fraud.version}

    def score(self, reports: Reports, history: History) -> list[dict]:
        """One result per report, in input order (see the README for the response contract). `reports` is a
        frame or its columns as plain lists (features.build.Reports)."""
        return self._score(reports, report_columns(reports, history))

    def score_features(self, reports: pd.DataFrame, X: pd.DataFrame) -> list[dict]:
        """score() for reports whose features are already built (X = report_features(reports, ...))."""
        return self._score(reports, _frame_columns(X))

    def _score(self, reports: Reports, X: Columns) -> list[dict]:
        sev, fraud = self.severity.bundle, self.fraud.bundle
        M = _matrices(X, (sev.validity, sev.severity, fraud.report))
        p_valid = sev.validity.predict_proba(M[0])
        sev_probs = sev.severity.predict_proba(M[1])
        fraud_risk = fraud.report.predict_proba(M[2])
        prio = priority(p_valid, sev_probs, fraud_risk)
        sev_idx = sev_probs.argmax(axis=1)
        reasons = self._reasons(X, M, p_valid, sev_probs, fraud_risk, sev_idx)
        ids = [str(r) for r in values_of(reports["report_id"])]
        created = [t.isoformat() for t in values_of(reports["created_at"])]
        out = []
        for i in range(len(ids)):
            out.append({
                "report_id": ids[i],
                "created_at": created[i],
                "p_valid": round(float(p_valid[i]), 6),
                "severity": V.SEVERITIES[sev_idx[i]],
                "severity_probabilities": {s: round(float(sev_probs[i, j]), 6) for j, s in enumerate(V.SEVERITIES)},
                "fraud_risk": round(float(fraud_risk[i]), 6),
                "priority": float(prio[i]),
                "reasons": reasons[i],
                "model_versions": self.model_versions,
            })
        return out

    def _reasons(self, X: Columns, M: tuple[np.ndarray, ...], p_valid: np.ndarray, sev_probs: np.ndarray,
                 fraud_risk: np.ndarray, sev_idx: np.ndarray) -> list[list[dict]]:
        """The contributions that move the priority most, across the three report models.

        Each model's LightGBM contribution (raw-score units) is scaled by how
        much one unit of that model's raw score moves the priority at this row
        (first-order, through the calibration), so a fraud model's confident
        "not fraud" on a harassment report does not crowd out why the report
        looks valid and severe. `contribution` stays LightGBM's own number;
        `priority_effect` is the scaled one the ranking uses.
        """
        sev, fraud = self.severity.bundle, self.fraud.bundle
        names = sev.validity.features
        weights = np.array([SEVERITY_WEIGHTS[s] for s in V.SEVERITIES])
        expected_w = sev_probs @ weights
        rows = np.arange(len(p_valid))
        p_cls = sev_probs[rows, sev_idx]
        gradients = {
            "validity": 100 * (1 - fraud_risk) * expected_w * sev.validity.slope * p_valid * (1 - p_valid),
            "severity": 100 * (1 - fraud_risk) * p_valid * p_cls * (weights[sev_idx] - expected_w) / sev.severity.temperature_,
            "fraud": 100 * (1 - p_valid * expected_w) * fraud.report.slope * fraud_risk * (1 - fraud_risk),
        }
        blocks = {
            "validity": sev.validity.contributions(M[0]),
            "severity": sev.severity.contributions(M[1], sev_idx),
            "fraud": fraud.report.contributions(M[2]),
        }
        raw = np.hstack(list(blocks.values()))
        effect = np.hstack([blocks[m] * gradients[m][:, None] for m in blocks])
        model_names = np.repeat(list(blocks), len(names))
        top = np.argsort(-np.abs(effect), axis=1, kind="stable")[:, :TOP_REASONS]
        return [
            [
                {
                    "feature": names[j % len(names)],
                    "contribution": round(float(raw[i, j]), 6),
                    "model": str(model_names[j]),
                    "priority_effect": round(float(effect[i, j]), 4),
                    "value": _json_value(X[names[j % len(names)]][i]),
                }
                for j in top[i]
            ]
            for i in rows
        ]
