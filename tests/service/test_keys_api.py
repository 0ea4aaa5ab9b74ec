"""Keys, rate limits and observability over HTTP, against one real service with 2 workers.

The service runs on a fresh store without models or marketplace data (no training needed): intake then scores
with the rules-only priority, which is all a claim and a resolution need.
"""
from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from conftest import client, make_keys, parse_metrics, start_service, stop_service

RATE, BURST = 20, 40  # per key and worker: small enough to reach, large enough for the other tests' few calls
ID_LIKE = re.compile(r"(case-|dk_|r-keys-|[0-9a-f]{12})")


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, store_url):
    folder = tmp_path_factory.mktemp("keys-service")
    proc, url = start_service({"DOCKET_DATABASE_URL": store_url, "DOCKET_DATA_DIR": str(folder / "no-data"),
                               "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'mlflow.db'}", "DOCKET_WORKERS": "2",
                               "DOCKET_RATE_LIMIT": str(RATE), "DOCKET_RATE_BURST": str(BURST)},
                              folder / "service.log", wait_ready=False)
    keys = make_keys(store_url)
    yield url, keys, folder / "service.log"
    stop_service(proc)


def log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return lines


def call(url: str, key: str, rid: str) -> int:
    """POST /penalty with an empty body on a new connection (so the kernel may pick either worker): 422 once the
    key is accepted, 401 when it is not."""
    return httpx.post(f"{url}/penalty", json={}, headers={"Authorization": f"Bearer {key}", "X-Request-ID": rid},
                      timeout=30).status_code


def pids_of(log: Path, rids: set[str]) -> dict[str, int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = {line["request_id"]: line["pid"] for line in log_lines(log) if line.get("request_id") in rids}
        if len(found) == len(rids):
            return found
        time.sleep(0.2)
    return found


def test_a_revoked_key_is_refused_at_once_by_both_workers(two_workers):
    url, keys, log = two_workers
    admin = client(keys["admin"])
    key = admin.post(f"{url}/keys", json={"role": "intake"}).json()["key"]
    key_id = key.split("_")[1]
    rids = [f"before-{i}-{uuid.uuid4().hex[:8]}" for i in range(30)]
    before = {rid: call(url, key, rid) for rid in rids}
    assert set(before.values()) <= {422, 429}, before  # accepted (429: accepted, then over the rate)
    assert len(set(pids_of(log, set(rids)).values())) == 2, "the requests did not reach both workers"

    res = admin.post(f"{url}/keys/{key_id}/revoke")
    assert res.status_code == 200 and res.json()["revoked_at"]
    rids = [f"after-{i}-{uuid.uuid4().hex[:8]}" for i in range(30)]
    after = {rid: call(url, key, rid) for rid in rids}
    assert set(after.values()) == {401}, after
    assert len(set(pids_of(log, set(rids)).values())) == 2, "the refusals did not come from both workers"

    again = admin.post(f"{url}/keys/{key_id}/revoke")
    assert again.status_code == 200 and again.json()["revoked_at"] == res.json()["revoked_at"]
    assert admin.post(f"{url}/keys/nosuchkey/revoke").status_code == 404
    listed = {k["key_id"]: k for k in admin.get(f"{url}/keys").json()}
    assert listed[key_id]["revoked_at"] == res.json()["revoked_at"]
    assert key.split("_", 2)[2] not in json.dumps(listed)
    audit = admin.get(f"{url}/audit", params={"entity_id": key_id}).json()
    audit = audit["events"] if isinstance(audit, dict) else audit
    assert [e["action"] for e in audit].count("key_revoked") == 1


def test_a_key_may_expire_and_bad_expiries_are_named(two_workers):
    url, keys, _ = two_workers
    admin = client(keys["admin"])
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    res = admin.post(f"{url}/keys", json={"role": "intake", "expires_at": soon})
    assert res.status_code == 201 and res.json()["expires_at"]
    key = res.json()["key"]
    no_zone = (datetime.now(UTC) + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    res = admin.post(f"{url}/keys", json={"role": "intake", "expires_at": no_zone.isoformat()})
    assert res.status_code == 201 and res.json()["expires_at"] == f"{no_zone.isoformat()}+00:00"  # as every time
    assert call(url, key, "expiring-1") == 422
    time.sleep(3.5)
    assert call(url, key, "expiring-2") == 401
    for body, field in (({"role": "intake", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at"),
                        ({"role": "intake", "expires_at": "2999-01-01T00:00:00Z"}, "expires_at"),
                        ({"role": "intake", "expires_at": "0001-01-01T00:00:00+01:00"}, "expires_at"),
                        ({"role": "intake", "expires_at": "now"}, "expires_at"),
                        ({"role": "intake", "expires_at": 1767225600}, "expires_at"),
                        ({"role": "intake", "expires_at": "soon"}, "expires_at"),
                        ({"role": "root"}, "role"), ({}, "role"), ({"role": "intake", "x": 1}, "x")):
        res = admin.post(f"{url}/keys", json=body)
        assert res.status_code == 422 and field in [d["field"] for d in res.json()["detail"]], (body, res.text)
    assert admin.post(f"{url}/keys", content=b"null", headers={"content-type": "application/json"}).status_code == 422


def test_a_key_over_its_rate_gets_429_with_retry_after_and_open_paths_are_never_limited(two_workers):
    url, keys, _ = two_workers
    key = client(keys["admin"]).post(f"{url}/keys", json={"role": "intake"}).json()["key"]
    with client(key) as c:  # one connection: one worker, one bucket
        answers = [c.post(f"{url}/penalty", json={}) for _ in range(BURST + 20)]
    statuses = [r.status_code for r in answers]
    assert statuses[:BURST] == [422] * BURST and 429 in statuses[BURST:], statuses
    limited = next(r for r in answers if r.status_code == 429)
    assert int(limited.headers["retry-after"]) >= 1 and "rate limit" in limited.json()["error"]
    assert limited.headers["x-request-id"]
    with httpx.Client() as c:
        assert {c.get(f"{url}{path}").status_code for path in ("/livez", "/metrics") for _ in range(BURST + 20)} \
            == {200}
    time.sleep(1.5)
    assert client(key).post(f"{url}/penalty", json={}).status_code == 422  # refilled


def test_metrics_move_with_traffic_and_carry_no_raw_ids(two_workers):
    url, keys, log = two_workers
    intake, investigator = client(keys["intake"]), client(keys["investigator"])
    report = {"report_id": f"r-keys-{uuid.uuid4().hex[:8]}", "created_at": "2025-11-02T20:15:00Z",
              "reporter_id": "a-keys-reporter", "reporter_type": "buyer", "channel": "livestream",
              "subject_id": "a-keys-subject", "show_id": None, "order_id": None, "category": "spam",
              "description": "spam links in chat"}
    deadline = time.monotonic() + 120
    while (res := intake.post(f"{url}/reports", json={"reports": [report]})).status_code == 503:
        assert time.monotonic() < deadline, res.text  # the history is read from the store at start
        time.sleep(1)
    assert res.status_code == 200 and res.json()["scored_by"] == "rules", res.text
    claimed = investigator.post(f"{url}/queue/claim", json={"case_id": f"case-{report['report_id']}"})
    assert claimed.status_code == 200, claimed.text
    rid = f"resolve-{uuid.uuid4().hex}"
    resolved = investigator.post(f"{url}/cases/case-{report['report_id']}/resolve", json={"valid": False},
                                 headers={"X-Request-ID": rid})
    assert resolved.status_code == 200 and resolved.headers["x-request-id"] == rid, resolved.text
    scored = httpx.post(f"{url}/score", json={"reports": []}, headers={"Authorization": f"Bearer {keys['intake']}",
                                                                     "X-Request-ID": "direct-route-1"})
    assert scored.headers["x-request-id"] == "direct-route-1"  # the direct routes (serving/api/direct.py) too
    for unsafe in ("bad id\u00e9".encode("latin-1"), b"x" * 65, b"a\"b", b""):  # replaced by a fresh id
        echoed = httpx.get(f"{url}/livez", headers={"X-Request-ID": unsafe}).headers["x-request-id"]
        assert re.fullmatch(r"[0-9a-f]{32}", echoed), (unsafe, echoed)
    events = intake.post(f"{url}/events", json={"accounts": [{"account_id": f"a-keys-{uuid.uuid4().hex[:6]}",
                                                              "created_at": "2025-01-01T00:00:00Z", "role": "buyer",
                                                              "verified": False}]})
    assert events.status_code == 200, events.text

    bad = [f"bad-{i}-{uuid.uuid4().hex[:8]}" for i in range(20)]
    assert {call(url, "dk_000000000000_nokey", rid) for rid in bad} == {401}
    assert len(set(pids_of(log, set(bad)).values())) == 2  # both workers answered some of them

    series = {}
    deadline = time.monotonic() + 30  # the backlog gauges come from the sweep (every few seconds)
    while time.monotonic() < deadline:
        series = parse_metrics(httpx.get(f"{url}/metrics").text)
        if any(name == "docket_queue_depth" for name, _ in series):
            break
        time.sleep(1)
    total = lambda name, **labels: sum(v for (n, ls), v in series.items()  # noqa: E731
                                       if n == name and all(dict(ls).get(k) == x for k, x in labels.items()))
    assert total("docket_reports_accepted_total", scored_by="rules") >= 1
    assert total("docket_claims_total", outcome="case") >= 1
    assert total("docket_resolutions_total") >= 1
    assert total("docket_events_stored_total", kind="accounts") >= 1
    assert total("docket_http_requests_total", route="/cases/{case_id}/resolve", status="200") >= 1
    assert {dict(ls)["family"] for (n, ls) in series if n == "docket_queue_depth"} == \
        {"behavioral", "logistics", "fraud"}
    # one worker's /metrics adds up both workers' counters
    assert total("docket_http_requests_total", method="POST", route="/penalty", status="401") >= len(bad)
    labels = {v for (_, ls) in series for _, v in ls}
    assert not any(ID_LIKE.search(v) for v in labels), sorted(v for v in labels if ID_LIKE.search(v))

    deadline = time.monotonic() + 10
    while not (mine := [line for line in log_lines(log) if line.get("request_id") == rid]):
        assert time.monotonic() < deadline, "the request id is not in the service log"
        time.sleep(0.2)
    line = mine[0]
    assert line["route"] == "/cases/{case_id}/resolve" and line["status"] == 200 and line["method"] == "POST"
    assert line["key_id"] == keys["investigator"].split("_")[1] and line["duration_ms"] >= 0 and line["time"]
    assert keys["investigator"].split("_", 2)[2] not in log.read_text()


def test_metrics_name_the_model_versions_serving(service, keys):
    """On the session's service, which has trained models: the versions loaded, one per worker."""
    deadline = time.monotonic() + 60
    while True:
        series = parse_metrics(httpx.get(f"{service}/metrics").text)
        loaded = {dict(ls)["model"]: (dict(ls)["version"], v) for (n, ls), v in series.items()
                  if n == "docket_model_loaded" and v > 0}
        if len(loaded) == 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    served = client(keys["admin"]).get(f"{service}/models").json()["model_versions"]
    assert {model: version for model, (version, _) in loaded.items()} == served
    assert all(workers == 1 for _, workers in loaded.values())
