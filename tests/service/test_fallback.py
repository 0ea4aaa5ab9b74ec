"""With no models the queue keeps ordering by the rules-only priority; claims time out; models rescore."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from conftest import as_request, client, make_keys

from policy.file import DEFAULT_POLICY


def test_no_models_rules_only_ordering_claim_timeout_and_rescoring(tables, data_dir, tmp_path, launch_service):
    policy = tmp_path / "policy.yaml"
    policy.write_text(DEFAULT_POLICY.read_text().replace("claim_timeout_minutes: 30", "claim_timeout_minutes: 0.04")
                      .replace("sweep_seconds: 5", "sweep_seconds: 1"))
    (tmp_path / "no-data").mkdir()  # an empty store: the queue holds only what this test sends
    env = {"DOCKET_DATA_DIR": str(tmp_path / "no-data"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}",
           "DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "DOCKET_POLICY_FILE": str(policy)}
    url = launch_service(env, wait_ready=False)
    keys = make_keys(env["DOCKET_DATABASE_URL"])
    intake, inv = client(keys["intake"]), client(keys["investigator"])

    reports = tables["reports"].iloc[-300:].reset_index(drop=True)
    batch = [dict(r, report_id=f"fb-{uuid.uuid4().hex[:4]}-{r['report_id']}") for r in as_request(reports.head(30))]
    deadline = time.monotonic() + 60
    while True:  # the data source loads in the background; intake answers 503 until then
        res = intake.post(f"{url}/reports", json={"reports": batch})
        if res.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert res.status_code == 200, res.text
    assert res.json()["scored_by"] == "rules"
    assert inv.get(f"{url}/readyz").status_code == 503  # models are still missing

    queue = inv.get(f"{url}/queue", params={"limit": 100}).json()
    assert len(queue) == 30 and all(c["scored_by"] == "rules" for c in queue)
    keys_order = [(-c["priority"], c["deadline"], c["case_id"]) for c in queue]
    assert keys_order == sorted(keys_order)
    assert [c["case_id"] for c in inv.get(f"{url}/queue", params={"limit": 100}).json()] == [c["case_id"] for c in queue]

    first = inv.post(f"{url}/queue/claim").json()["case"]
    second = client(keys["admin"]).post(f"{url}/queue/claim").json()["case"]
    assert first["case_id"] != second["case_id"]
    time.sleep(3)  # the claim times out after 2.4 s
    again = client(keys["admin"]).post(f"{url}/queue/claim").json()["case"]
    assert again["case_id"] in (first["case_id"], second["case_id"])
    expired = client(keys["admin"]).get(f"{url}/audit", params={"entity_id": again["case_id"]}).json()
    assert any(e["action"] == "release" and "expired" in (e["why"] or "") for e in expired)

    docket = str(Path(sys.executable).parent / "docket")
    done = subprocess.run([docket, "train", "--data", str(data_dir)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        queue = inv.get(f"{url}/queue", params={"limit": 100}).json()
        if queue and all(c["scored_by"] == "model" for c in queue):
            break
        time.sleep(1)
    assert queue and all(c["scored_by"] == "model" for c in queue), [c["scored_by"] for c in queue]
    assert all(c["model_versions"] for c in queue)
