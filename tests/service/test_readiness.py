"""The service says not-ready until champion models exist, then becomes ready without a restart."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from conftest import client, make_keys


def test_service_is_not_ready_without_models_and_picks_up_a_first_training(data_dir, tmp_path, launch_service):
    uri = f"sqlite:///{tmp_path / 'empty.db'}"
    env = {"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": uri,
           "DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    url = launch_service(env, wait_ready=False)
    admin = client(make_keys(env["DOCKET_DATABASE_URL"])["admin"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 503
    res = admin.post(f"{url}/score", json={"reports": []}, timeout=5)
    assert res.status_code == 503 and "not loaded" in res.json()["error"]

    docket = str(Path(sys.executable).parent / "docket")
    done = subprocess.run([docket, "train", "--data", str(data_dir)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
        time.sleep(1)
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200
