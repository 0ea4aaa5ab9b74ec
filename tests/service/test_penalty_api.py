"""POST /penalty (side-effect free) and the ledger routes, over HTTP against the running service."""
from __future__ import annotations

import re
import uuid

import pytest

AS_OF = "2025-06-01T00:00:00Z"


def penalty_body(**over) -> dict:
    body = {
        "as_of": AS_OF,
        "account": {"account_id": "a-1", "role": "seller"},
        "violation": {"family": "behavioral", "category": "harassment", "severity": "low",
                      "occurred_at": "2025-05-31T12:00:00Z"},
        "history": [
            {"occurred_at": f"2025-05-{d:02d}T00:00:00Z", "family": "behavioral", "category": "spam",
             "severity": "low", "actions": [{"type": "warning"}], "appeal": None}
            for d in (1, 10, 20)
        ],
    }
    body.update(over)
    return body


def test_penalty_returns_the_contract_fields(api, service):
    res = api.post(f"{service}/penalty", json=penalty_body())
    assert res.status_code == 200, res.text
    body = res.json()
    assert {"actions", "account_health", "reasons", "policy_version"} <= set(body)
    assert {"type": "suspension", "days": 2} in body["actions"]
    assert body["account_health"] == "poor" and body["reasons"]


def test_penalty_is_identical_on_every_call(api, service):
    answers = {api.post(f"{service}/penalty", json=penalty_body()).text for _ in range(3)}
    assert len(answers) == 1


def test_penalty_records_nothing(api, service):
    before = api.get(f"{service}/audit").json()
    api.post(f"{service}/penalty", json=penalty_body())
    assert api.get(f"{service}/audit").json() == before


@pytest.mark.parametrize("change, field, words", [
    ({"violation": {"family": "behavioral", "category": "harassment", "severity": "huge",
                    "occurred_at": "2025-05-31T12:00:00Z"}}, "violation.severity", "unknown value 'huge'"),
    ({"violation": {"family": "behavioral", "category": "harassment", "severity": "low",
                    "occurred_at": "2025-07-01T00:00:00Z"}}, "violation.occurred_at", "after as_of"),
    ({"account": {"account_id": "a-1"}}, "account.role", "missing field"),
    ({"as_of": None}, "as_of", "missing field"),
    ({"violation": {"family": "logistics", "category": "harassment", "severity": "low",
                    "occurred_at": "2025-05-31T12:00:00Z"}}, "violation.category", "belongs to behavioral"),
    ({"history": [{"occurred_at": "2025-05-01T00:00:00Z", "family": "behavioral", "category": "spam",
                   "severity": "low", "actions": [{"type": "jail"}], "appeal": None}]},
     "history[0].actions[0].type", "unknown value 'jail'"),
    ({"history": [{"occurred_at": "2025-05-01T00:00:00Z", "family": "behavioral", "category": "spam",
                   "severity": "low", "actions": [], "appeal": "maybe"}]}, "history[0].appeal", "unknown value"),
])
def test_invalid_penalty_requests_get_422_per_field(api, service, change, field, words):
    res = api.post(f"{service}/penalty", json=penalty_body(**change))
    assert res.status_code == 422, res.text
    detail = res.json()["detail"]
    assert any(d["field"] == field and words in d["message"] for d in detail), detail


def record_body(account_id, violation_id, category="spam", severity="low", occurred="2025-05-01T00:00:00Z",
                as_of="2025-05-02T00:00:00Z", role="seller") -> dict:
    from features import vocabulary as V

    return {
        "violation_id": violation_id, "actor": "investigator-7", "as_of": as_of,
        "account": {"account_id": account_id, "role": role},
        "violation": {"family": V.family_of(category), "category": category, "severity": severity,
                      "occurred_at": occurred},
        "model_versions": {"docket-severity": "1"}, "source_report_id": "r0000001",
    }


def record(api, service, account_id, violation_id, **over):
    return api.post(f"{service}/violations", json=record_body(account_id, violation_id, **over))


def test_recording_is_idempotent_and_audited(api, service):
    acc, vid = f"acc-{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    first = record(api, service, acc, vid)
    assert first.status_code == 201, first.text
    again = record(api, service, acc, vid)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["decision"] == first.json()["decision"]
    health = api.get(f"{service}/accounts/{acc}/health", params={"as_of": "2025-05-03T00:00:00Z"}).json()
    assert health["counting_violations"] == [vid] and len(health["history"]) == 1
    assert [e for e in api.get(f"{service}/audit", params={"entity_id": vid}).json()]


def test_history_accumulates_and_an_overturned_appeal_lifts_the_penalty(api, service):
    acc = f"acc-{uuid.uuid4().hex[:8]}"
    ids = [f"v-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    for i, vid in enumerate(ids):
        day = 1 + i * 5
        res = record(api, service, acc, vid, occurred=f"2025-05-{day:02d}T00:00:00Z", as_of=f"2025-05-{day + 1:02d}T00:00:00Z")
        assert res.status_code == 201, res.text
    last = res.json()["decision"]
    assert {"type": "suspension", "days": 2} in last["actions"]
    health = api.get(f"{service}/accounts/{acc}/health", params={"as_of": "2025-05-17T00:00:00Z"}).json()
    assert any(p["type"] == "suspension" and p["ends_at"] for p in health["active_penalties"])
    res = api.post(f"{service}/violations/{ids[-1]}/appeal",
                     json={"outcome": "overturned", "actor": "admin-1", "why": "wrong account", "at": "2025-05-17T01:00:00Z"})
    assert res.status_code == 200, res.text
    health = api.get(f"{service}/accounts/{acc}/health", params={"as_of": "2025-05-17T02:00:00Z"}).json()
    assert ids[-1] not in health["counting_violations"]
    assert not any(p["violation_id"] == ids[-1] for p in health["active_penalties"])


def test_ledger_errors_are_clear(api, service):
    assert api.get(f"{service}/accounts/nobody-here/health").status_code == 404
    res = api.post(f"{service}/violations/nope/appeal", json={"outcome": "upheld", "actor": "a", "why": "x"})
    assert res.status_code == 404
    res = api.post(f"{service}/violations", json={"violation_id": "x"})
    assert res.status_code == 422 and any(d["field"] == "account" for d in res.json()["detail"])
    res = api.post(f"{service}/violations/nope/appeal", json={"outcome": "maybe", "actor": "a", "why": "x"})
    assert res.status_code == 422


def test_a_known_violation_id_with_other_content_is_a_409_naming_each_field(api, service):
    """Issue 15, defect 8: other content was a 422, another as_of, source report or model versions a silent 200."""
    acc, vid = f"acc-{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    assert record(api, service, acc, vid).status_code == 201
    assert record(api, service, acc, vid).status_code == 200  # an exact retry
    for change, field in ((dict(severity="high"), "severity"), (dict(as_of="2025-05-04T00:00:00Z"), "as_of")):
        res = record(api, service, acc, vid, **change)
        assert res.status_code == 409, res.text
        assert [d["field"] for d in res.json()["detail"]] == [field]
        assert "already recorded with other content" in res.json()["error"]
    body = record_body(acc, vid)
    for field, value in (("source_report_id", "r-other"), ("model_versions", {"docket-severity": "2"})):
        res = api.post(f"{service}/violations", json={**body, field: value})
        assert res.status_code == 409 and [d["field"] for d in res.json()["detail"]] == [field], res.text
    no_as_of = {k: v for k, v in body.items() if k != "as_of"}  # the server's clock is not the caller's content
    assert api.post(f"{service}/violations", json=no_as_of).status_code == 200
    assert len(api.get(f"{service}/audit", params={"entity_id": vid}).json()) == 1


def test_one_appeal_per_violation_a_second_is_a_409_naming_the_first(api, service):
    acc, vid = f"acc-{uuid.uuid4().hex[:8]}", f"v-{uuid.uuid4().hex[:8]}"
    assert record(api, service, acc, vid).status_code == 201
    first = {"outcome": "overturned", "actor": "admin-1", "why": "wrong account", "at": "2025-05-04T00:00:00Z"}
    ok = api.post(f"{service}/violations/{vid}/appeal", json=first)
    assert ok.status_code == 200, ok.text
    again = api.post(f"{service}/violations/{vid}/appeal", json=first)  # a retry: the same answer, nothing stored
    assert again.status_code == 200 and again.json() == ok.json()
    for outcome in ("overturned", "upheld"):
        res = api.post(f"{service}/violations/{vid}/appeal", json={**first, "outcome": outcome, "why": "second look",
                                                                  "at": "2025-05-05T00:00:00Z"})
        assert res.status_code == 409, res.text
        assert re.fullmatch(f"conflict: violation {vid} was already appealed: overturned at "
                            r"2025-05-04T00:00:00\+00:00 by key:\w+ \(admin-1\) \(one appeal per violation\)",
                            res.json()["error"]), res.json()
    appeals = [e for e in api.get(f"{service}/audit", params={"entity_id": vid}).json()
               if e["action"] == "violation.appealed"]
    assert len(appeals) == 1
