"""Training registers both models in MLflow, and the models learn what single fields cannot."""
from __future__ import annotations

import mlflow
import numpy as np
from mlflow import MlflowClient

from features import settings as S
from training import registry


def test_training_registers_both_models_under_champion(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    for name in (S.SEVERITY_MODEL, S.FRAUD_MODEL):
        version = client.get_model_version_by_alias(name, S.CHAMPION)
        assert str(version.version) == trained.versions[name]
        assert version.run_id == trained.run_id


def test_training_run_logs_params_metrics_features_fingerprint_and_plots(trained, settings):
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    client = MlflowClient()
    run = client.get_run(trained.run_id)
    assert run.data.params["seed"] == str(settings.seed)
    assert len(run.data.tags["data_fingerprint"]) == 16
    for key in ("validity_roc_auc", "severity_macro_f1", "fraud_report_average_precision",
                "fraud_order_roc_auc", "baseline_tree_validity_roc_auc"):
        assert key in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(trained.run_id, "plots")}
    assert {"plots/precision_recall.png", "plots/calibration.png", "plots/importance_validity.png"} <= artifacts
    assert "features.json" in {a.path for a in client.list_artifacts(trained.run_id)}


def test_full_model_clearly_beats_a_depth2_tree_on_raw_fields(trained):
    m = trained.metrics
    assert m["validity_roc_auc"] - m["baseline_tree_validity_roc_auc"] >= 0.08, m


def test_models_rank_far_better_than_chance(trained):
    m = trained.metrics
    assert m["validity_roc_auc"] > 0.8
    assert m["fraud_report_roc_auc"] > 0.85
    assert m["fraud_order_roc_auc"] > 0.8
    assert m["severity_quadratic_kappa"] > 0.3


def test_probabilities_are_calibrated_on_the_future_window(trained):
    m = trained.metrics
    assert m["validity_ece"] < 0.05
    assert m["fraud_report_ece"] < 0.03


def test_registered_pyfunc_predicts_from_a_feature_frame(trained, settings, tables):
    from features.build import History, order_features

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/{S.FRAUD_MODEL}@{S.CHAMPION}")
    X = order_features(tables["orders"].head(20), History.from_tables(tables))
    out = model.predict(X)
    assert list(out.columns) == ["fraud_risk"] and len(out) == 20
    assert np.all((out["fraud_risk"] >= 0) & (out["fraud_risk"] <= 1))


def test_training_is_seeded_so_a_rerun_predicts_identically(trained, settings, tables):
    from training.train import train

    loaded = registry.load(S.SEVERITY_MODEL, S.CHAMPION)
    again = train(tables, settings, alias="rerun")
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    rerun = registry.load(S.SEVERITY_MODEL, "rerun")
    assert again.metrics == trained.metrics
    assert rerun.bundle.validity.booster_.model_to_string() == loaded.bundle.validity.booster_.model_to_string()
