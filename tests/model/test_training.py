"""Training registers both models in MLflow, and the models learn what single fields cannot."""
from __future__ import annotations

import json

import mlflow
import numpy as np
from mlflow import MlflowClient

from config import settings as S
from training import registry


def test_first_training_registers_both_models_as_challenger_and_champion(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    assert set(trained.aliases) == {"challenger", S.CHAMPION}
    for name in (S.SEVERITY_MODEL, S.FRAUD_MODEL):
        for alias in trained.aliases:
            version = client.get_model_version_by_alias(name, alias)
            assert str(version.version) == trained.versions[name]
            assert version.run_id == trained.run_id


def test_training_run_logs_params_metrics_features_fingerprint_and_plots(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.data.params["seed"] == str(settings.seed)
    # The search's choice per fraud model, as the registered models were fitted with it.
    report = trained.evaluation.report
    for task in ("fraud_orders", "fraud_reports"):
        assert json.loads(run.data.params[f"search_{task}"]) == report[task]["search"]["chosen"]
    assert run.data.params["refit_fraud_orders"] == "True"
    assert len(run.data.tags["data_fingerprint"]) == 16
    assert run.data.tags["window.test_start"] == trained.evaluation.windows.test_start.isoformat()
    for key in ("validity.model.roc_auc", "severity.model.macro_f1", "fraud_reports.model.average_precision",
                "fraud_orders.model.roc_auc", "validity.depth2_tree.roc_auc", "fraud_reports.oracle.average_precision",
                "queue.1.model.urgent_speedup_vs_fifo"):
        assert key in run.data.metrics, key
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/fraud_reports_precision_recall.png", "plots/fraud_orders_calibration.png",
            "plots/queue_replay.png", "plots/importance_validity.png"} <= artifacts
    top = {a.path for a in client.list_artifacts(trained.run_id)}
    assert {"features.json", "evaluation.json", "model_card.md"} <= top


def test_model_card_states_purpose_data_baselines_and_limits(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    card = mlflow.artifacts.load_text(f"runs:/{trained.run_id}/model_card.md")
    ap = trained.evaluation.report["fraud_reports"]["rankers"]["model"]["average_precision"]
    assert f"docket-fraud v{trained.versions[S.FRAUD_MODEL]}" in card
    assert f"{ap:.3f}" in card  # the run's own figure, not a template's
    for heading in ("What the models are for", "What data they saw", "against the baselines", "should not be trusted"):
        assert heading in card
    assert "{" not in card  # every placeholder filled


def test_full_model_clearly_beats_a_depth2_tree_on_raw_fields(trained):
    m = trained.metrics
    assert m["validity.model.roc_auc"] - m["validity.depth2_tree.roc_auc"] >= 0.08, m


def test_models_rank_far_better_than_chance(trained):
    m = trained.metrics
    assert m["validity.model.roc_auc"] > 0.8
    assert m["fraud_reports.model.roc_auc"] > 0.85
    assert m["fraud_orders.model.roc_auc"] > 0.8
    assert m["severity.model.quadratic_kappa"] > 0.3


def test_probabilities_are_calibrated_on_the_future_window(trained):
    m = trained.metrics
    assert m["validity.model.ece"] < 0.05
    assert m["fraud_reports.model.ece"] < 0.03


def test_registered_pyfunc_predicts_from_a_feature_frame(trained, settings, tables):
    from features.build import order_features
    from features.history import History

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{S.FRAUD_MODEL}@{S.CHAMPION}")
    X = order_features(tables["orders"].head(20), History.from_tables(tables))
    out = model.predict(X)
    assert list(out.columns) == ["fraud_risk"] and len(out) == 20
    assert np.all((out["fraud_risk"] >= 0) & (out["fraud_risk"] <= 1))


def test_training_is_seeded_so_a_rerun_predicts_identically(trained, settings, tables):
    from training.train import train

    loaded = registry.load(S.SEVERITY_MODEL, S.CHAMPION)
    from policy.file import load_queue_policy

    again = train(tables, settings, alias="rerun", rules=load_queue_policy())
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    rerun = registry.load(S.SEVERITY_MODEL, "rerun")
    assert again.metrics == trained.metrics
    assert rerun.bundle.validity.booster_.model_to_string() == loaded.bundle.validity.booster_.model_to_string()
