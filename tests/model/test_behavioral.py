"""Behavioural tests of the trained report models: invariance, direction, minimum functionality.

In the spirit of Made-With-ML's behavioural tests (after Ribeiro et al., "Beyond Accuracy"), run against the
real models of the session's training run and scored the way the service scores them (training.scoring's
Scorer on bundles of those models), never against mocks.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from features.build import columns_matrix, report_columns
from features.history import History
from features.text import text_features
from training.registered_models import FraudBundle, SeverityBundle
from training.registry import Loaded
from training.scoring import Scorer

# ---------------------------------------------------------------------------
# Shared set-up: the models, the service's scorer over them, the history as the data stands.


@pytest.fixture(scope="module")
def models(trained):
    return trained.evaluation.report_models


@pytest.fixture(scope="module")
def scorer(trained, models) -> Scorer:
    """The service's scoring path (Scorer.score) over the models this run trained, without the registry."""
    return Scorer(severity=Loaded("docket-severity", "session", SeverityBundle(models.validity, models.severity)),
                  fraud=Loaded("docket-fraud", "session", FraudBundle(models.fraud, trained.evaluation.order_model)))


@pytest.fixture(scope="module")
def history(tables) -> History:
    return History.from_tables(tables)


@pytest.fixture(scope="module")
def held_out(tables) -> pd.DataFrame:
    """Reports from the last fifth of the data (the window training holds out), in filing order."""
    reports = tables["reports"]
    return reports[reports["created_at"] >= reports["created_at"].quantile(0.8)]


def model_outputs(models, reports: pd.DataFrame, history: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p_valid, severity probabilities and fraud risk, unrounded, straight from the three classifiers."""
    M = columns_matrix(report_columns(reports, history), models.validity.features)
    return models.validity.predict_proba(M), models.severity.predict_proba(M), models.fraud.predict_proba(M)


# ---------------------------------------------------------------------------
# 1. Invariance: wording that carries no signal does not move any score.

# Same length, letters only, none of them in (or next to a word of) any features.text lexicon: swapping them
# keeps every text feature (length, word count, exclamations, capitals share, lexicon counts) as it was.
NEUTRAL_SYNONYMS = {"hello": "howdy", "thanks": "cheers", "please": "kindly", "seller": "vendor",
                    "someone": "anybody", "happened": "occurred", "received": "obtained", "stop": "quit",
                    "reviewed": "examined", "money": "funds"}
_NEUTRAL = re.compile(r"\b(" + "|".join(NEUTRAL_SYNONYMS) + r")\b", re.IGNORECASE)


def reword(description: str) -> str:
    """The description with neutral words swapped for synonyms, keeping each word's capitalisation."""
    def swap(match: re.Match) -> str:
        word, synonym = match.group(0), NEUTRAL_SYNONYMS[match.group(0).lower()]
        return synonym.upper() if word.isupper() else synonym.capitalize() if word[0].isupper() else synonym
    return _NEUTRAL.sub(swap, description)


def test_rewording_a_description_without_its_signal_words_leaves_every_score_unchanged(models, scorer, history,
                                                                                      held_out):
    reworded_text = held_out["description"].map(reword)
    # Up to four real reports per reporter type whose description the rewording changes.
    picked = held_out[reworded_text != held_out["description"]].groupby("reporter_type").head(4)
    reworded = picked.assign(description=picked["description"].map(reword))
    assert len(picked) >= 8 and (reworded["description"] != picked["description"]).all()

    before, after = text_features(picked["description"]), text_features(reworded["description"])
    for name in before:
        assert np.array_equal(before[name], after[name]), name

    for b, a in zip(model_outputs(models, picked, history), model_outputs(models, reworded, history)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    # Through the service's scorer: scores, priority and reasons all the same.
    assert scorer.score(reworded, history) == scorer.score(picked, history)


# ---------------------------------------------------------------------------
# 2. Direction: a subject with more upheld past reports is not made to look less likely to be reported validly.

UPHELD_COUNTS = (0, 1, 2, 4)
N_SUBJECTS = 40


def with_upheld_reports(tables: dict, targets: pd.DataFrame, k: int) -> dict:
    """The tables plus, for each target report, k earlier reports about its subject that review upheld.

    Upheld is outcomes.valid (what subject_reports_valid_rate counts; the README's "reports ... were upheld"),
    not enforcements: these add no violation, only reviewed-valid reports. They are filed 60+ days before
    the target (outside every report-count window, so only the review record moves), resolved a day later,
    by automated detection (no reporter account whose record would change), in a behavioural category (so
    no fraud-report counts move either).
    """
    if k == 0:
        return tables
    reports, outcomes = [], []
    for i, target in enumerate(targets.itertuples()):
        for j in range(k):
            filed = target.created_at - pd.Timedelta(days=60 + j)
            report_id = f"upheld-{i}-{j}"
            reports.append({"report_id": report_id, "created_at": filed, "reporter_id": None,
                            "reporter_type": "automated_detection", "channel": "livestream",
                            "subject_id": target.subject_id, "show_id": None, "order_id": None,
                            "category": "harassment",
                            "description": "Automated flag: possible harassment in the live stream (score 0.90)."})
            outcomes.append({"report_id": report_id, "valid": True, "severity": "medium", "fraud_confirmed": False,
                             "resolved_at": filed + pd.Timedelta(days=1)})

    def extended(name: str, rows: list[dict]) -> pd.DataFrame:
        frame = tables[name]
        return pd.concat([frame, pd.DataFrame(rows, columns=frame.columns).astype(frame.dtypes.to_dict())],
                         ignore_index=True)

    return {**tables, "reports": extended("reports", reports), "outcomes": extended("outcomes", outcomes)}


@pytest.fixture(scope="module")
def upheld_sweep(models, tables, held_out) -> dict[int, dict[str, np.ndarray]]:
    """For one held-out report about each of N_SUBJECTS subjects: p_valid and the subject's review record
    after adding each of UPHELD_COUNTS upheld reports about the subject."""
    targets = held_out.drop_duplicates("subject_id").head(N_SUBJECTS)
    out = {}
    for k in UPHELD_COUNTS:
        h = History.from_tables(with_upheld_reports(tables, targets, k))
        columns = report_columns(targets, h)
        out[k] = {"p_valid": model_outputs(models, targets, h)[0],
                  **{name: np.asarray(columns[name]) for name in
                     ("subject_reports_resolved", "subject_reports_valid_rate", "subject_reports_30d")}}
    return out


def test_more_upheld_earlier_reports_about_the_subject_never_lower_p_valid(upheld_sweep):
    base = upheld_sweep[0]
    for k in UPHELD_COUNTS[1:]:  # the record the model sees really moves, and only the review record
        assert np.array_equal(upheld_sweep[k]["subject_reports_resolved"], base["subject_reports_resolved"] + k)
        assert np.array_equal(upheld_sweep[k]["subject_reports_30d"], base["subject_reports_30d"])
    rates = np.column_stack([upheld_sweep[k]["subject_reports_valid_rate"] for k in UPHELD_COUNTS])
    assert (np.diff(rates, axis=1) > 0).all()

    p = np.column_stack([upheld_sweep[k]["p_valid"] for k in UPHELD_COUNTS])
    steps = np.diff(p, axis=1)  # the validity model is constrained monotone in the review record (training)
    assert (steps >= 0).all(), f"p_valid fell by {-steps.min():.4f} for subject #{steps.min(axis=1).argmin()}"
    # And on the whole the record counts for the report, not just against nothing.
    assert p[:, -1].mean() > p[:, 0].mean()
