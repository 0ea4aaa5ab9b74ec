"""Intake, fallback scoring, rescoring and spike detection, between the HTTP layer and the queue store.

Plain Python over the history, the scorer (None while models are unavailable)
and the queue, so the service and `docket monitor` share one path. When the
models are missing or fail, reports are scored by the deterministic rules-only
priority and marked so; the sweep rescores them once models are back.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features.build import report_features
from features.history import History
from policy.queue import ALERT_LOOKBACK, QueuePolicy, rules_priority
from policy.spikes import SpikeConfig, detect_spikes
from serving.input_checks import FieldError, RequestError, cold_start, parse_reports
from serving.queue.cases import Queue, Score
from serving.store.conflicts import ConflictError
from training.scoring import Scorer

log = logging.getLogger("docket.triage")
FUTURE_SLACK = timedelta(minutes=5)


@dataclass
class Triage:
    queue: Queue
    qp: QueuePolicy
    max_batch: int

    def intake(self, payload: Any, history: History, scorer: Scorer | None, *, actor: str, now: datetime,
               refuse_other_content: bool = False) -> dict:
        """Validate, score (models or rules), store, then look for spikes among the subjects just reported.

        With `refuse_other_content` (the API's POST /reports), a known report id sent with other content is a
        ConflictError (409) and nothing of the batch is stored; without it (the monitors, whose deterministic
        ids name one finding however often it is found, and imports) the first stored wins, as before.
        """
        payload, evidence = _split_evidence(payload)
        reports = parse_reports(payload, self.max_batch, history)
        future = (reports["created_at"] > pd.Timestamp(now + FUTURE_SLACK)).to_numpy().nonzero()[0]
        if len(future):
            raise RequestError([FieldError(f"reports[{i}].created_at", "is in the future") for i in future])
        if refuse_other_content:
            clashes = self.queue.conflicts(reports)
            if clashes:
                raise ConflictError(clashes)
        scores = self.score(reports, history, scorer)
        result = self.queue.intake(reports, scores, actor=actor, now=now, evidence=evidence)
        alerts = self.detect_spikes(reports["subject_id"].unique().tolist(), reports["created_at"].min(), history, now)
        return {**result, "scored_by": scores[0].scored_by if scores else None, "alerts": alerts}

    def score(self, reports: pd.DataFrame, history: History, scorer: Scorer | None) -> list[Score]:
        """Model scores (or the rules-only priority), each naming the fields that refer to accounts or orders
        the history does not know yet (cold start)."""
        X = report_features(reports, history)
        unknown = cold_start(reports, history)
        if scorer is not None:
            try:
                return [Score("model", r["priority"], r["p_valid"], r["severity"], r["fraud_risk"],
                              {"severity_probabilities": r["severity_probabilities"], "reasons": r["reasons"],
                               "model_versions": r["model_versions"], "cold_start": u})
                        for r, u in zip(scorer.score_features(reports, X), unknown)]
            except Exception:  # the queue never stops ordering: fall back and rescore later
                log.exception("model scoring failed; using the rules-only priority")
        return [Score("rules", float(p), detail={"reasons": [{"rule": "rules_priority", "reporter_type": t,
                                                                 "category": c}], "cold_start": u})
                for p, t, c, u in zip(rules_priority(reports, X, self.qp), reports["reporter_type"],
                                      reports["category"], unknown)]

    def rescore_pending(self, history: History, scorer: Scorer, now: datetime, limit: int = 1000) -> int:
        """Rescore reports that were scored by the rules while models were away; returns how many."""
        pending = self.queue.rules_scored_reports(limit)
        if pending.empty:
            return 0
        scores = self.score(pending, history, scorer)
        if scores and scores[0].scored_by == "model":
            self.queue.rescore(pending["report_id"].tolist(), scores, now)
            return len(scores)
        return 0

    def rescore_arrived(self, history: History, scorer: Scorer | None, now: datetime) -> int:
        """Rescore reports scored while they named accounts or orders not seen yet, once some of those have
        arrived; returns how many."""
        pending, unknown_then = self.queue.cold_start_reports()
        if pending.empty:
            return 0
        unknown_now = cold_start(pending, history)
        arrived = [i for i, (then, now_) in enumerate(zip(unknown_then, unknown_now)) if len(now_) < len(then)]
        if not arrived:
            return 0
        reports = pending.iloc[arrived].reset_index(drop=True)
        self.queue.rescore(reports["report_id"].tolist(), self.score(reports, history, scorer), now)
        return len(arrived)

    def detect_spikes(self, subjects: list[str], since: pd.Timestamp, history: History, now: datetime) -> list[str]:
        """Open (or grow) alert cases for spikes among stored reports about these subjects."""
        config = SpikeConfig.from_dict(self.qp.spikes)
        # Look back well past one window, so a burst that began in an earlier batch keeps its start
        # (and so its alert key) instead of opening a second alert.
        lookback = max(timedelta(minutes=config.window_minutes), ALERT_LOOKBACK.to_pytimedelta())
        recent = self.queue.recent_reports(subjects, (since - lookback).to_pydatetime())
        if len(recent) < config.min_reports:
            return []
        X = report_features(recent, history)
        codes = history.account_codes(recent["reporter_id"])
        created = history.created_at(codes, np.iinfo(np.int64).min)
        frame = recent.assign(
            reporter_age_days=X["reporter_age_days"].to_numpy(),
            reporter_accuracy=X["reporter_accuracy"].to_numpy(),
            reporter_past_resolved=X["reporter_past_resolved"].to_numpy(),
            reporter_created_at=pd.to_datetime(np.where(codes >= 0, created, 0), unit="s", utc=True).where(codes >= 0),
        )
        return [self.queue.open_alert(alert, now) for alert in detect_spikes(frame, config)]


def _split_evidence(payload: Any) -> tuple[Any, list[Any] | None]:
    """Monitors attach machine-readable evidence to their reports; it is stored, not scored."""
    if not isinstance(payload, list) or not any(isinstance(r, dict) and "evidence" in r for r in payload):
        return payload, None
    evidence = [r.get("evidence") if isinstance(r, dict) else None for r in payload]
    return [{k: v for k, v in r.items() if k != "evidence"} if isinstance(r, dict) else r for r in payload], evidence
