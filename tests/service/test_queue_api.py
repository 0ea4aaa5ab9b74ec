"""The triage queue over HTTP against the running service: intake, ranking, claims, cases, alerts, auth."""
from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import as_request, client, every_page


def fresh(reports: pd.DataFrame, tag: str | None = None) -> list[dict]:
    """The rows as a request, with new report ids so every test starts from new reports."""
    tag = tag or uuid.uuid4().hex[:6]
    return [dict(r, report_id=f"{tag}-{r['report_id']}") for r in as_request(reports)]


@pytest.fixture(scope="module")
def recent(tables) -> pd.DataFrame:
    """Ordinary reports from the last weeks of the simulated period."""
    r = tables["reports"]
    return r[r["created_at"] > r["created_at"].max() - pd.Timedelta(days=20)].reset_index(drop=True)


def test_intake_is_idempotent_under_retries(api, service, recent):
    batch = fresh(recent.head(12))
    first = api.post(f"{service}/reports", json={"reports": batch})
    assert first.status_code == 200, first.text
    assert sorted(first.json()["accepted"]) == sorted(r["report_id"] for r in batch)
    for _ in range(2):
        again = api.post(f"{service}/reports", json={"reports": batch}).json()
        assert again["accepted"] == [] and sorted(again["already_known"]) == sorted(r["report_id"] for r in batch)
    more = fresh(recent.iloc[12:15])
    mixed = api.post(f"{service}/reports", json={"reports": batch[:3] + more}).json()
    assert sorted(mixed["accepted"]) == sorted(r["report_id"] for r in more)
    assert sorted(mixed["already_known"]) == sorted(r["report_id"] for r in batch[:3])
    queued = Counter(c["case_id"] for c in api.get(f"{service}/queue", params={"limit": 1000}).json())
    assert all(queued[f"case-{r['report_id']}"] == 1 for r in batch + more)


def test_concurrent_submissions_of_the_same_reports_store_each_once(api, service, keys, recent):
    batch = fresh(recent.iloc[300:310])
    results: list[dict] = []

    def submit() -> None:
        res = client(keys["intake"]).post(f"{service}/reports", json={"reports": batch})
        results.append({"status": res.status_code, **res.json()})

    threads = [threading.Thread(target=submit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r["status"] == 200 for r in results), results
    accepted = [rid for r in results for rid in r["accepted"]]
    assert sorted(accepted) == sorted(r["report_id"] for r in batch)  # each stored by exactly one request
    for r in results:
        assert sorted(r["accepted"] + r["already_known"]) == sorted(x["report_id"] for x in batch)


def test_intake_rejects_bad_reports_per_field(api, service, recent):
    bad = fresh(recent.head(2))
    bad[1]["category"] = "nonsense"
    res = api.post(f"{service}/reports", json={"reports": bad})
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "reports[1].category"
    future = fresh(recent.head(1))
    future[0]["created_at"] = "2999-01-01T00:00:00+00:00"
    assert api.post(f"{service}/reports", json={"reports": future}).status_code == 422


def test_queue_orders_by_priority_and_shows_deadlines(api, service, recent):
    api.post(f"{service}/reports", json={"reports": fresh(recent.head(40))})
    items = api.get(f"{service}/queue", params={"limit": 200}).json()
    assert items
    for item in items:
        assert {"case_id", "priority", "deadline", "seconds_left", "reasons", "p_valid", "severity",
                "fraud_risk"} <= set(item)
    ordinary = [i for i in items if i["kind"] == "report"]
    keys = [(-i["priority"], i["deadline"]) for i in ordinary]
    assert keys == sorted(keys)
    fam = api.get(f"{service}/queue", params={"family": "logistics", "limit": 200}).json()
    assert fam and all(i["family"] == "logistics" for i in fam)
    assert api.get(f"{service}/queue", params={"family": "weird"}).status_code == 422


def test_concurrent_claims_never_hand_out_a_case_twice(service, keys, recent):
    api = client(keys["admin"])
    api.post(f"{service}/reports", json={"reports": fresh(recent.iloc[40:100])})
    claimed: list[str] = []
    lock = threading.Lock()

    def investigator() -> None:
        me = client(keys["investigator"])
        for _ in range(6):
            case = me.post(f"{service}/queue/claim").json()["case"]
            if case:
                with lock:
                    claimed.append(case["case_id"])

    threads = [threading.Thread(target=investigator) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) >= 40
    assert len(claimed) == len(set(claimed))


def test_a_claimed_case_is_resolved_into_the_ledger_and_reporters_are_notified(service, keys, recent, tmp_path):
    inv = client(keys["investigator"])
    buyer_reports = recent[recent["reporter_id"].notna()].iloc[200:203]
    client(keys["intake"]).post(f"{service}/reports", json={"reports": fresh(buyer_reports)})
    case = inv.post(f"{service}/queue/claim").json()["case"]
    detail = inv.get(f"{service}/cases/{case['case_id']}").json()
    assert detail["reports"] and detail["proposed_penalty"]["actions"] is not None
    assert detail["subject"]["account_health"] in ("excellent", "good", "fair", "poor", "very_poor")
    other = client(keys["admin"]).post(f"{service}/cases/{case['case_id']}/resolve",
                                       json={"valid": True, "severity": "medium"})
    assert other.status_code == 409  # held by someone else
    res = inv.post(f"{service}/cases/{case['case_id']}/resolve",
                   json={"valid": True, "severity": "medium", "fraud_confirmed": False, "notes": "seen in replay"})
    assert res.status_code == 200, res.text
    assert res.json()["violation"]["actions"]
    reporters = sorted({r["reporter_id"] for r in detail["reports"] if r["reporter_id"]})
    assert res.json()["notified"] == reporters  # every reporter of the case is told it closed
    health = inv.get(f"{service}/accounts/{case['subject_id']}/health").json()
    # recorded (the simulated report is from 2025, so by now it is past the 180-day window and no longer counts)
    assert any(v["violation_id"] == f"v-{case['case_id']}" for v in health["history"])
    assert inv.get(f"{service}/cases/{case['case_id']}").json()["case"]["status"] == "resolved"


def test_export_labels_writes_the_outcomes_table(service, keys, store_url, tmp_path):
    from features.io import load_tables

    docket = str(Path(sys.executable).parent / "docket")
    done = subprocess.run([docket, "export-labels", "--out", str(tmp_path / "labels")],
                          env={"DOCKET_DATABASE_URL": store_url, "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    labels = load_tables(tmp_path / "labels", require=["outcomes", "reports"])
    assert len(labels["outcomes"]) >= 1 and set(labels["outcomes"]["report_id"]) <= set(labels["reports"]["report_id"])


def _burst(tables, scenario: str) -> pd.DataFrame:
    """The densest hour of one simulator scenario's reports about one subject."""
    truth = tables["truth_reports"]
    r = tables["reports"].merge(truth[["report_id", "scenario"]], on="report_id")
    r = r[r["scenario"] == scenario].drop(columns="scenario")
    best = None
    for _, group in r.groupby("subject_id"):
        t = group.sort_values(["created_at", "report_id"])
        times = t["created_at"].reset_index(drop=True)
        end = times.searchsorted(times + pd.Timedelta(hours=1))
        k = int((end - range(len(times))).argmax())
        if best is None or end[k] - k > len(best):
            best = t.iloc[k:end[k]]
    return best.reset_index(drop=True)


@pytest.mark.parametrize("scenario, verdict", [("spike", "incident"), ("brigading", "brigading")])
def test_a_report_spike_opens_one_alert_case_that_jumps_the_queue(api, service, tables, scenario, verdict):
    burst = _burst(tables, scenario)
    assert len(burst) >= 20
    res = api.post(f"{service}/reports", json={"reports": fresh(burst)}).json()
    assert res["alerts"], res
    alerts = {a["case_id"]: a for a in api.get(f"{service}/alerts").json()}
    alert = alerts[res["alerts"][0]]
    assert alert["verdict"] == verdict, alert["reasons"]
    assert alert["count"] >= 20 and alert["distinct_reporters"] >= 10 and alert["reasons"]
    top = api.get(f"{service}/queue", params={"limit": 5}).json()
    assert top[0]["kind"] == "spike"
    case = api.get(f"{service}/cases/{alert['case_id']}").json()
    assert len(case["reports"]) == alert["count"]
    proposal = case["proposed_penalty"]
    assert proposal["stage"] == "under_investigation" and proposal["spike_verdict"] == verdict
    held = {"type": "investigation_hold"} in proposal["actions"]
    assert held == (verdict == "incident")  # an incident's subject is held; a brigade's target is not


ENDPOINTS = [
    ("POST", "/score", {"reports": []}, {"intake", "investigator", "admin"}),
    ("POST", "/rank", {"reports": []}, {"intake", "investigator", "admin"}),
    ("POST", "/penalty", {}, {"intake", "investigator", "admin"}),
    ("POST", "/reports", {"reports": []}, {"intake", "admin"}),
    ("GET", "/queue", None, {"investigator", "admin"}),
    ("POST", "/queue/claim", None, {"investigator", "admin"}),
    ("GET", "/cases/none", None, {"investigator", "admin"}),
    ("POST", "/cases/none/resolve", {}, {"investigator", "admin"}),
    ("GET", "/alerts", None, {"investigator", "admin"}),
    ("POST", "/violations", {}, {"investigator", "admin"}),
    ("GET", "/accounts/none/health", None, {"investigator", "admin"}),
    ("GET", "/accounts/none/timeline", None, {"investigator", "admin"}),
    ("POST", "/violations/none/appeal", {}, {"admin"}),
    ("POST", "/violations/none/remedial", {}, {"admin"}),
    ("GET", "/audit", None, {"admin"}),
    ("POST", "/keys", {"role": "nobody"}, {"admin"}),
    ("GET", "/keys", None, {"admin"}),
    ("POST", "/keys/none/revoke", None, {"admin"}),
    ("GET", "/openapi.json", None, {"intake", "investigator", "admin"}),
]


@pytest.mark.parametrize("method, path, body, allowed", ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_every_endpoint_checks_key_and_role(service, keys, method, path, body, allowed):
    def call(key: str | None) -> httpx.Response:
        return client(key).request(method, f"{service}{path}", json=body)

    for key in (None, "dk_bad_key", "dk_" + keys["admin"][3:-2] + "xx", "not a key"):
        res = call(key)
        assert res.status_code == 401, (key, res.text)
        assert "admin" not in res.text and "investigator" not in res.text
    for role, key in keys.items():
        status = call(key).status_code
        if role in allowed:
            assert status not in (401, 403), (role, status)
        else:
            assert status == 403, (role, status)


def test_open_endpoints_need_no_key(service):
    for path in ("/livez", "/readyz", "/metrics"):
        assert httpx.get(f"{service}{path}").status_code == 200


def test_admin_creates_keys_and_every_state_change_is_audited(service, keys):
    admin = client(keys["admin"])
    res = admin.post(f"{service}/keys", json={"role": "intake"})
    assert res.status_code == 201
    new = res.json()["key"]
    assert client(new).post(f"{service}/reports", json={"reports": []}).status_code == 422  # authorised, empty batch
    actions = Counter(e["action"] for e in every_page(admin, f"{service}/audit", limit=5000))
    assert {"intake", "claim", "resolve", "key_created"} <= set(actions)


def test_docket_monitor_feeds_transaction_and_fulfilment_cases_into_the_queue(service, keys, store_url, settings,
                                                                               data_dir):
    docket = str(Path(sys.executable).parent / "docket")
    env = {**__import__("os").environ, "DOCKET_DATABASE_URL": store_url,
           "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri, "DOCKET_DATA_DIR": str(data_dir)}
    done = subprocess.run([docket, "monitor", "--as-of", "2025-12-02"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    again = subprocess.run([docket, "monitor", "--as-of", "2025-12-02"], env=env, capture_output=True, text=True,
                           timeout=300)
    assert "0 new in the queue" in again.stderr  # idempotent: the same cases are already queued
    inv = client(keys["investigator"])
    queued = inv.get(f"{service}/queue", params={"limit": 1000}).json()
    tm = [c for c in queued if c["case_id"].startswith("case-tm-")]
    fr = [c for c in queued if c["case_id"].startswith("case-fr-")]
    assert tm and fr
    case = inv.get(f"{service}/cases/{fr[0]['case_id']}").json()
    report = case["reports"][0]
    assert report["reporter_type"] == "rules_engine" and report["evidence"]["orders"]
    assert inv.get(f"{service}/cases/{tm[0]['case_id']}").json()["reports"][0]["reporter_type"] == "automated_detection"


# -- release, claim-this-case, the violation id, errors that say what happened --------------------------------


@pytest.fixture(scope="module")
def investigators(service, keys) -> tuple[httpx.Client, httpx.Client]:
    """Two investigators: the session's key and a second one the admin creates."""
    res = client(keys["admin"]).post(f"{service}/keys", json={"role": "investigator"})
    assert res.status_code == 201, res.text
    return client(keys["investigator"]), client(res.json()["key"])


def queued_case(service, keys, recent, row: int) -> str:
    """A new case in the queue, made from one recent report (rows apart per test, so tests share none)."""
    batch = fresh(recent.iloc[row:row + 1])
    res = client(keys["intake"]).post(f"{service}/reports", json={"reports": batch})
    assert res.json()["accepted"] == [batch[0]["report_id"]], res.text
    return f"case-{batch[0]['report_id']}"


def test_the_holder_releases_a_case_and_another_investigator_claims_it(service, keys, recent, investigators):
    first, second = investigators
    case_id = queued_case(service, keys, recent, 400)
    held = first.post(f"{service}/queue/claim", json={"case_id": case_id}).json()["case"]
    taken = second.post(f"{service}/cases/{case_id}/release")
    assert taken.status_code == 409
    assert taken.json()["error"] == (f"case '{case_id}' is claimed by {held['claimed_by']} until "
                                     f"{held['claim_expires_at']}: only the investigator holding it can release it")
    res = first.post(f"{service}/cases/{case_id}/release")
    assert res.status_code == 200, res.text
    assert res.json() == {"case_id": case_id, "status": "open", "released_by": held["claimed_by"]}
    assert case_id in [c["case_id"] for c in first.get(f"{service}/queue", params={"limit": 1000}).json()]
    again = first.post(f"{service}/cases/{case_id}/release")
    assert again.status_code == 409 and again.json()["error"].startswith(f"case '{case_id}' is open")
    claimed = second.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert claimed.status_code == 200 and claimed.json()["case"]["case_id"] == case_id
    assert claimed.json()["case"]["claimed_by"] != held["claimed_by"]
    assert first.post(f"{service}/cases/no-such-case/release").status_code == 404


def test_a_release_is_audited_with_who_released_what(service, keys, recent, investigators):
    first, _ = investigators
    case_id = queued_case(service, keys, recent, 401)
    held = first.post(f"{service}/queue/claim", json={"case_id": case_id}).json()["case"]
    assert first.post(f"{service}/cases/{case_id}/release").status_code == 200
    events = client(keys["admin"]).get(f"{service}/audit", params={"entity_id": case_id}).json()
    assert [e["action"] for e in events] == ["claim", "release"]
    release = events[-1]
    assert release["actor"] == held["claimed_by"]
    assert release["before"]["claimed_by"] == held["claimed_by"] and release["after"] == {"status": "open"}


def test_only_investigators_and_admins_may_release(service, keys):
    for key, status in ((None, 401), (keys["intake"], 403)):
        assert client(key).post(f"{service}/cases/none/release").status_code == status
    for role in ("investigator", "admin"):
        assert client(keys[role]).post(f"{service}/cases/none/release").status_code == 404


def test_claiming_a_named_case_takes_that_case_and_refuses_it_while_someone_holds_it(service, keys, recent,
                                                                                     investigators):
    first, second = investigators
    two = {queued_case(service, keys, recent, 402), queued_case(service, keys, recent, 406)}
    order = [c["case_id"] for c in first.get(f"{service}/queue", params={"limit": 1000}).json() if c["case_id"] in two]
    case_id = order[-1]  # ranked below the other: not the case a plain claim would hand out
    res = first.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert res.status_code == 200, res.text
    held = res.json()["case"]
    assert held["case_id"] == case_id and held["priority"] is not None
    refused = second.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert refused.status_code == 409
    assert refused.json()["error"] == (f"case '{case_id}' is claimed by {held['claimed_by']} "
                                       f"until {held['claim_expires_at']}")
    again = first.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert again.status_code == 200 and again.json()["case"]["claim_expires_at"] == held["claim_expires_at"]
    assert first.post(f"{service}/queue/claim", json={"case_id": "no-such-case"}).status_code == 404


def test_a_claim_body_is_checked_field_by_field(service, investigators):
    first, _ = investigators
    bad = first.post(f"{service}/queue/claim", json={"caseid": "x", "also": 1})
    assert bad.status_code == 422
    assert [d["field"] for d in bad.json()["detail"]] == ["also", "caseid"]
    assert "unknown field" in bad.json()["detail"][0]["message"]
    for body in ({"case_id": ""}, {"case_id": 7}, ["case-x"]):
        assert first.post(f"{service}/queue/claim", json=body).status_code == 422, body
    empty = first.post(f"{service}/queue/claim", json={})
    assert empty.status_code == 200 and "case" in empty.json()  # the best open case, as without a body


def test_the_resolve_answer_names_the_violation_an_appeal_needs(service, keys, recent, investigators):
    first, _ = investigators
    case_id = queued_case(service, keys, recent, 403)
    first.post(f"{service}/queue/claim", json={"case_id": case_id})
    res = first.post(f"{service}/cases/{case_id}/resolve", json={"valid": True, "severity": "high"})
    assert res.status_code == 200, res.text
    violation_id = res.json()["violation_id"]
    assert violation_id == f"v-{case_id}"
    appeal = client(keys["admin"]).post(f"{service}/violations/{violation_id}/appeal",
                                        json={"outcome": "overturned", "why": "the video shows otherwise"})
    assert appeal.status_code == 200, appeal.text
    assert any(v["violation_id"] == violation_id and v["appeal"] == "overturned" for v in appeal.json()["history"])
    other = queued_case(service, keys, recent, 404)
    first.post(f"{service}/queue/claim", json={"case_id": other})
    invalid = first.post(f"{service}/cases/{other}/resolve", json={"valid": False})
    assert invalid.status_code == 200 and invalid.json()["violation_id"] is None


def test_resolving_twice_or_someone_elses_case_says_what_happened(service, keys, recent, investigators):
    first, second = investigators
    case_id = queued_case(service, keys, recent, 405)
    held = first.post(f"{service}/queue/claim", json={"case_id": case_id}).json()["case"]
    theirs = second.post(f"{service}/cases/{case_id}/resolve", json={"valid": False})
    assert theirs.status_code == 409
    assert theirs.json()["error"] == (f"case '{case_id}' is claimed by {held['claimed_by']} until "
                                      f"{held['claim_expires_at']}: only the investigator holding it can resolve it")
    answer = first.post(f"{service}/cases/{case_id}/resolve", json={"valid": False, "notes": "no proof"})
    assert answer.status_code == 200
    events = client(keys["admin"]).get(f"{service}/audit", params={"entity_id": case_id}).json()
    resolved_at = next(e["at"] for e in events if e["action"] == "resolve")
    # the same resolution sent again (its answer lost on the way back) is answered the same and changes nothing
    resent = first.post(f"{service}/cases/{case_id}/resolve", json={"valid": False, "notes": "no proof"})
    assert resent.status_code == 200 and resent.json() == answer.json()
    assert client(keys["admin"]).get(f"{service}/audit", params={"entity_id": case_id}).json() == events
    message = f"case '{case_id}' is already resolved (by {held['claimed_by']} at "
    for who, verdict in ((first, {"valid": True, "severity": "low"}), (first, {"valid": False}),
                         (second, {"valid": False, "notes": "no proof"})):
        twice = who.post(f"{service}/cases/{case_id}/resolve", json=verdict)
        assert twice.status_code == 409 and twice.json()["error"].startswith(message), twice.text
        assert "claim it before resolving" not in twice.json()["error"]
    assert pd.Timestamp(twice.json()["error"][len(message):-1]) == pd.Timestamp(resolved_at)
    claim = second.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert claim.status_code == 409 and claim.json()["error"].startswith(message)


def test_a_known_report_id_with_other_content_is_a_409_and_nothing_of_the_batch_is_stored(api, service, recent):
    """Issue 15: "409 for a known id with different content, everywhere": a resent report with another
    description or time was named in already_known (first wins) and the change silently dropped."""
    first, second = fresh(recent.iloc[40:42])
    assert api.post(f"{service}/reports", json={"reports": [first]}).json()["accepted"] == [first["report_id"]]
    again = api.post(f"{service}/reports", json={"reports": [first]})
    assert again.status_code == 200 and again.json()["already_known"] == [first["report_id"]]
    other = "profile" if first["channel"] == "direct_message" else "direct_message"
    changed = dict(first, description=first["description"] + " (edited)", channel=other)
    res = api.post(f"{service}/reports", json={"reports": [second, changed]})
    assert res.status_code == 409, res.text
    assert res.json()["detail"] == [{"field": "reports[1]",
                                     "message": f"{first['report_id']} is stored with other channel, description"}]
    audit = api.get(f"{service}/audit", params={"entity_id": second["report_id"]}).json()
    assert audit == []  # the new report of the refused batch was not stored
