"""POST /events and what follows from it, over HTTP against the running service (a store filled from the data
folder at start): checks, idempotence, conflicts, roles, cold-start reports rescored when their account arrives,
health from the imported past."""
from __future__ import annotations

import time
import uuid

import pandas as pd
import pytest
from conftest import as_request, client


def _account(account_id: str, role: str = "seller") -> dict:
    return {"account_id": account_id, "created_at": "2025-03-01T10:00:00Z", "role": role, "verified": False}


def _order(order_id: str, buyer: str, seller: str, **facts) -> dict:
    return {"order_id": order_id, "buyer_id": buyer, "seller_id": seller, "show_id": None, "amount": 25.0,
            "created_at": "2025-03-02T10:00:00Z", "ship_by": "2025-03-04T10:00:00Z", **facts}


def test_a_batch_is_stored_once_and_a_retry_names_what_is_known(api, service):
    tag = uuid.uuid4().hex[:8]
    body = {"accounts": [_account(f"s-{tag}"), _account(f"b-{tag}", "buyer")],
            "orders": [_order(f"o-{tag}", f"b-{tag}", f"s-{tag}", shipped_at="2025-03-03T09:00:00Z")],
            "order_updates": [{"order_id": f"o-{tag}", "fact": "delivered", "at": "2025-03-05T12:00:00Z"}]}
    first = api.post(f"{service}/events", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == {"accounts": 2, "orders": 1, "order_updates": 2}
    again = api.post(f"{service}/events", json=body).json()
    assert again["stored"] == {}
    assert again["already_known"] == {"accounts": [f"s-{tag}", f"b-{tag}"], "orders": [f"o-{tag}"],
                                      "order_updates": [f"o-{tag}/shipped", f"o-{tag}/delivered"]}
    assert again["seq"] >= first.json()["seq"]  # the store's last number: nothing new was taken for this batch


def test_a_known_id_with_other_content_is_a_409_and_nothing_of_the_batch_is_stored(api, service):
    tag = uuid.uuid4().hex[:8]
    assert api.post(f"{service}/events", json={"accounts": [_account(f"c-{tag}")]}).status_code == 200
    res = api.post(f"{service}/events", json={"accounts": [_account(f"c-{tag}", "buyer"), _account(f"d-{tag}")]})
    assert res.status_code == 409, res.text
    assert res.json()["detail"] == [{"field": "accounts[0]", "message": f"c-{tag} is stored with other role"}]
    assert api.get(f"{service}/accounts/d-{tag}/health").status_code == 404


@pytest.mark.parametrize("body, field, words", [
    ({"orders": [_order("x", "b", "s", amount=-1)]}, "orders[0].amount", "must not be negative"),
    ({"orders": [_order("x", "b", "s", amount="12")]}, "orders[0].amount", "expected a finite number"),
    ({"orders": [_order("x", "b", "s", shipped_at="2025-03-01T00:00:00Z")]}, "orders[0].shipped_at",
     "is before created_at"),
    ({"accounts": [dict(_account("x"), verified="yes")]}, "accounts[0].verified", "expected true or false"),
    ({"order_updates": [{"order_id": "x", "fact": "lost", "at": "2025-03-01T00:00:00Z"}]},
     "order_updates[0].fact", "unknown value 'lost'"),
    ({"account_updates": [{"account_id": "x", "at": "2025-03-01T00:00:00Z"}]}, "account_updates[0]",
     "exactly one of verified or role"),
    ({"outcomes": [{"report_id": "r", "valid": True, "severity": None, "fraud_confirmed": False,
                    "resolved_at": "2025-03-01T00:00:00Z"}]}, "outcomes[0].severity", "required when valid"),
    ({"accounts": [dict(_account("x"), created_at="0001-01-01T00:00:00Z")]}, "accounts[0].created_at",
     "is outside 2000-01-01 to 2100-01-01"),
    ({"payments": []}, "payments", "unknown field"),
    ({"accounts": []}, "body", "no events"),
])
def test_bad_events_get_422_naming_the_field(api, service, body, field, words):
    res = api.post(f"{service}/events", json=body)
    assert res.status_code == 422, res.text
    assert any(d["field"] == field and words in d["message"] for d in res.json()["detail"]), res.text


def test_events_need_the_intake_role(service, keys):
    body = {"accounts": [_account(f"r-{uuid.uuid4().hex[:8]}")]}
    assert client(keys["investigator"]).post(f"{service}/events", json=body).status_code == 403
    assert client(None).post(f"{service}/events", json=body).status_code == 401
    assert client(keys["intake"]).post(f"{service}/events", json=body).status_code == 200


def test_a_report_about_a_brand_new_account_is_queued_flagged_and_rescored_when_it_arrives(api, service, tables):
    tag = uuid.uuid4().hex[:8]
    seller = f"brand-new-seller-{tag}"
    report = dict(as_request(tables["reports"].iloc[[0]])[0], report_id=f"cold-{tag}", subject_id=seller,
                  order_id=None, created_at="2025-06-01T10:00:00Z")
    res = api.post(f"{service}/reports", json={"reports": [report]})
    assert res.status_code == 200 and res.json()["accepted"] == [report["report_id"]], res.text
    case = api.get(f"{service}/cases/case-{report['report_id']}").json()
    assert case["reports"][0]["score"]["cold_start"] == ["subject_id"]
    assert api.post(f"{service}/events", json={"accounts": [_account(seller)]}).status_code == 200
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the sweep (every few seconds) rescores it
        case = api.get(f"{service}/cases/case-{report['report_id']}").json()
        if case["reports"][0]["score"]["cold_start"] == []:
            break
        time.sleep(1)
    assert case["reports"][0]["score"]["cold_start"] == []


def test_health_starts_from_the_imported_past(api, service, tables):
    enf = tables["enforcements"]
    suspended = enf[enf["action"] == "suspension"]["account_id"].iloc[0]
    clean = sorted(set(tables["accounts"]["account_id"]) - set(enf["account_id"]))[0]
    as_of = (enf["decided_at"].max() + pd.Timedelta(days=1)).isoformat()
    record = api.get(f"{service}/accounts/{suspended}/health", params={"as_of": as_of}).json()
    assert record["account_health"] != "excellent" and record["history"]
    assert any(d["policy_version"] == "imported" for v in record["history"] for d in v["decisions"])
    fresh = api.get(f"{service}/accounts/{clean}/health")
    assert fresh.status_code == 200 and fresh.json()["account_health"] == "excellent"
