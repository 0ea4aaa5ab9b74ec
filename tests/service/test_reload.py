"""A running service picks up a new champion without a restart: on POST /admin/reload or by polling the aliases.

Each service here gets its own copy of the session registry, so moving `champion`
cannot disturb the other service tests. A "new version" is the champion's
artifacts registered again: what matters is that the version behind the alias
changes, not how the model was trained.
"""
from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from conftest import as_request, client, make_keys, start_service, stop_service
from mlflow import MlflowClient

from config import settings as S

MODELS = (S.SEVERITY_MODEL, S.FRAUD_MODEL)


def copy_registry(mlflow_uri: str, dest: Path) -> str:
    """A copy of a SQLite MLflow registry (artifacts stay where they are, shared read-only)."""
    source = sqlite3.connect(mlflow_uri.removeprefix("sqlite:///"))
    target = sqlite3.connect(dest)
    source.backup(target)
    source.close()
    target.close()
    return f"sqlite:///{dest}"


def new_champion(uri: str) -> dict[str, str]:
    """Register each champion's artifacts as a new version and move `champion` to it; returns the new versions."""
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = {}
    for name in MODELS:
        champ = registry.get_model_version_by_alias(name, S.CHAMPION)
        made = registry.create_model_version(name, source=champ.source, run_id=champ.run_id,
                                             model_id=champ.model_id)
        registry.set_registered_model_alias(name, S.CHAMPION, made.version)
        versions[name] = str(made.version)
    return versions


def key_id(key: str) -> str:
    return key.split("_")[1]


@pytest.fixture(scope="module")
def report(tables) -> list[dict]:
    return as_request(tables["reports"].iloc[[0]])


@pytest.fixture(scope="module")
def reloading(trained, data_dir, mlflow_uri, tmp_path_factory):
    """A service with its own registry and polling off, so only POST /admin/reload moves it: (url, uri, keys)."""
    tmp = tmp_path_factory.mktemp("reload")
    uri = copy_registry(mlflow_uri, tmp / "mlflow.db")
    store = f"sqlite:///{tmp / 'docket.db'}"
    proc, url = start_service({"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": uri,
                               "DOCKET_DATABASE_URL": store, "DOCKET_RELOAD_SECONDS": "0"}, tmp / "service.log")
    yield url, uri, make_keys(store)
    stop_service(proc)


def versions_scored(admin, url: str, report: list[dict]) -> dict[str, str]:
    res = admin.post(f"{url}/score", json={"reports": report})
    assert res.status_code == 200, res.text
    return res.json()[0]["model_versions"]


def test_admin_reload_swaps_in_the_new_champion_and_audits_it(reloading, trained, report):
    url, uri, keys = reloading
    admin = client(keys["admin"])
    before = admin.post(f"{url}/score", json={"reports": report}).json()[0]
    assert before["model_versions"] == trained.versions
    unchanged = admin.post(f"{url}/admin/reload")
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json()["changed"] is False and unchanged.json()["model_versions"] == trained.versions
    loaded_first = admin.get(f"{url}/models").json()["loaded_at"]

    moved = new_champion(uri)
    assert moved != trained.versions
    assert client(keys["investigator"]).post(f"{url}/admin/reload").status_code == 403
    assert client(keys["intake"]).post(f"{url}/admin/reload").status_code == 403
    assert versions_scored(admin, url, report) == trained.versions  # nothing moves until asked

    res = admin.post(f"{url}/admin/reload")
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["changed"] is True and body["model_versions"] == moved and body["previous"] == trained.versions
    after = admin.post(f"{url}/score", json={"reports": report}).json()[0]
    assert after["model_versions"] == moved
    assert after["p_valid"] == before["p_valid"]  # the same artifacts under a new version number

    models = client(keys["investigator"]).get(f"{url}/models")
    assert models.status_code == 200, models.text
    assert models.json()["model_versions"] == moved and models.json()["loaded_at"] > loaded_first
    events = [e for e in admin.get(f"{url}/audit", params={"entity_id": S.CHAMPION}).json()
              if e["action"] == "models.reloaded"]
    assert len(events) == 1  # the no-op reload wrote nothing
    assert events[0]["actor"] == f"key:{key_id(keys['admin'])}"
    assert events[0]["before"] == trained.versions and events[0]["after"] == moved


def test_reload_without_a_champion_keeps_the_old_models_and_answers_503(reloading, report):
    url, uri, keys = reloading
    admin = client(keys["admin"])
    serving = versions_scored(admin, url, report)
    registry = MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry.delete_registered_model_alias(S.FRAUD_MODEL, S.CHAMPION)
    try:
        res = admin.post(f"{url}/admin/reload")
        assert res.status_code == 503, res.text
        assert "no champion" in res.json()["error"] and S.FRAUD_MODEL in res.json()["error"]
        assert res.json()["model_versions"] == serving
        assert versions_scored(admin, url, report) == serving
        models = admin.get(f"{url}/models").json()
        assert models["model_versions"] == serving and S.FRAUD_MODEL in models["last_reload_error"]
    finally:
        registry.set_registered_model_alias(S.FRAUD_MODEL, S.CHAMPION, serving[S.FRAUD_MODEL])


def test_a_moved_champion_is_picked_up_by_polling_without_a_request(trained, data_dir, mlflow_uri, tmp_path,
                                                                    launch_service, report):
    uri = copy_registry(mlflow_uri, tmp_path / "mlflow.db")
    store = f"sqlite:///{tmp_path / 'docket.db'}"
    url = launch_service({"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": uri,
                          "DOCKET_DATABASE_URL": store, "DOCKET_RELOAD_SECONDS": "1"})
    admin = client(make_keys(store)["admin"])
    assert versions_scored(admin, url, report) == trained.versions

    moved = new_champion(uri)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and versions_scored(admin, url, report) != moved:
        time.sleep(0.5)
    assert versions_scored(admin, url, report) == moved
    events = [e for e in admin.get(f"{url}/audit", params={"entity_id": S.CHAMPION}).json()
              if e["action"] == "models.reloaded"]
    assert [(e["actor"], e["after"]) for e in events] == [("system:reload", moved)]
