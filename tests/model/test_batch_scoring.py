"""Batch scoring in chunks gives every report exactly the scores of scoring them all at once."""
from __future__ import annotations

import numpy as np

from features.build import columns_matrix, report_columns
from features.history import History
from training.batch_scoring import score_batch
from training.scoring import priority


def test_chunked_batch_scores_equal_scoring_all_reports_at_once(trained, tables):
    m = trained.evaluation.report_models
    reports = tables["reports"].head(5000)
    history = History.from_tables(tables)
    M = columns_matrix(report_columns(reports, history), m.validity.features)
    p_valid, severity, p_fraud = m.validity.predict_proba(M), m.severity.predict_proba(M), m.fraud.predict_proba(M)
    batch = score_batch(reports, history, m.validity, m.severity, m.fraud, chunk_rows=1200)  # last chunk shorter
    assert np.array_equal(batch.p_valid, p_valid)
    assert np.array_equal(batch.severity, severity)
    assert np.array_equal(batch.p_fraud, p_fraud)
    assert np.array_equal(batch.priority, priority(p_valid, severity, p_fraud))
