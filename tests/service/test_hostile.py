"""Hostile and careless bodies against the running service (issue 15, defects 2-5): every one is a prompt 4xx that
names what was wrong, and nothing of it is stored.

Each test is one kind of defect, parametrized over the bodies that once hurt the service (benchmarks/hostile.py,
which the fuzz benchmark replays too): 500s for empty objects and forms without a boundary (2), /score and /rank
hanging 60 s on surrogates, huge integers and deep nesting (3), bad timestamps stored or crashing after storing
(4), bodies and ids of any size (5).
"""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from benchmarks.hostile import (
    BAD_TIMES,
    BATCH_ROUTES,
    EMPTY,
    FAST,
    FORMS,
    LONG_TEXT,
    MALFORMED,
    NUL_PARAMS,
    OBJECT_ROUTES,
    ROUTES,
    VIOLATION,
    report,
)


def timed(api: httpx.Client, method: str, url: str, **kwargs) -> httpx.Response:
    start = time.monotonic()
    res = api.request(method, url, **kwargs)
    took = time.monotonic() - start
    assert took < FAST, f"{method} {url} took {took:.1f}s ({res.status_code})"
    return res


def names(res: httpx.Response, field: str) -> bool:
    """The error body names `field` (in its detail, or in its message)."""
    body = res.json()
    return any(d["field"] == field for d in body.get("detail", [])) or field in body["error"]


def not_stored(api: httpx.Client, service: str, report_id: str) -> None:
    assert api.get(f"{service}/cases/case-{report_id}").status_code == 404
    assert api.get(f"{service}/audit", params={"entity_id": report_id}).json() == []


# --- defect 3: bodies that hung /score and /rank (and broke every other route) -------------------------------

@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("kind", list(MALFORMED))
def test_bodies_json_cannot_hold_safely_are_a_prompt_400_saying_where(api, service, path, kind):
    raw, where = MALFORMED[kind]
    res = timed(api, "POST", f"{service}{path}", content=raw, headers={"content-type": "application/json"})
    assert res.status_code == 400, res.text
    assert names(res, where), res.text


def test_a_lone_surrogate_in_a_report_stores_nothing(api, service):
    rid = f"r-hostile-{uuid.uuid4().hex[:12]}"
    raw = ('{"reports": [%s]}' % httpx.Response(200, json=report(report_id=rid)).text).replace(
        '"rude in chat"', '"rude \\ud83d in chat"').encode()
    res = timed(api, "POST", f"{service}/reports", content=raw, headers={"content-type": "application/json"})
    assert res.status_code == 400 and names(res, "reports[0].description"), res.text
    not_stored(api, service, rid)


@pytest.mark.parametrize("path, params, field", NUL_PARAMS)
def test_a_nul_in_a_path_or_query_parameter_is_a_422_naming_it(api, service, path, params, field):
    """PostgreSQL refuses NUL in text (schemathesis found GET /audit?entity_id=%00 a 500 there)."""
    res = timed(api, "GET", f"{service}{path}", params=params)
    assert res.status_code == 422 and names(res, field), res.text


# --- defect 5: sizes ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, limit", [(p, 64 * 1024 * 1024) for p in BATCH_ROUTES] +
                         [(p, 1024 * 1024) for p in OBJECT_ROUTES])
def test_a_body_over_the_routes_limit_is_a_prompt_413_naming_the_limit(api, service, path, limit):
    body = b'{"reports": ["' + b"x" * (70 * 1024 * 1024) + b'"]}'
    res = timed(api, "POST", f"{service}{path}", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 413, res.text
    assert f"{limit:,} bytes" in res.json()["error"]


def test_a_body_over_the_limit_without_a_length_is_refused_while_it_streams(api, service):
    def chunks():
        for _ in range(70):
            yield b"x" * (1024 * 1024)

    res = timed(api, "POST", f"{service}/keys", content=chunks(), headers={"content-type": "application/json"})
    assert res.status_code == 413, res.text


@pytest.mark.parametrize("path, body, field", LONG_TEXT, ids=[f"{p}:{f}" for p, _, f in LONG_TEXT])
def test_text_over_the_contracts_limit_is_a_422_naming_the_field(api, service, path, body, field):
    rid = f"r-hostile-{uuid.uuid4().hex[:12]}"
    res = timed(api, "POST", f"{service}{path}", json=body(rid))
    assert res.status_code == 422, res.text[:500]
    assert names(res, field) and "characters long" in res.text, res.text[:500]
    assert len(res.content) < 10_000  # the answer never echoes the text back
    not_stored(api, service, rid)


def test_the_queue_stays_fast_after_the_hostile_bodies(api, service):
    res = timed(api, "GET", f"{service}/queue", params={"limit": 1000})
    assert res.status_code == 200
    assert all(len(c["case_id"]) <= 160 for c in res.json())


# --- defect 2: empty objects and forms ----------------------------------------------------------------------

@pytest.mark.parametrize("path, body, field", EMPTY, ids=[f"{p}:{f}" for p, _, f in EMPTY])
def test_empty_objects_are_a_422_naming_each_missing_field(api, service, path, body, field):
    res = timed(api, "POST", f"{service}{path}", json=body)
    assert res.status_code == 422, res.text
    assert names(res, field), res.text
    if path == "/violations":
        assert api.get(f"{service}/audit", params={"entity_id": body.get("violation_id", "-")}).json() == []


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("content_type", FORMS)
def test_forms_are_a_415_on_json_routes(api, service, path, content_type):
    res = timed(api, "POST", f"{service}{path}", content=b"--x\r\n\r\n", headers={"content-type": content_type})
    assert res.status_code == 415, res.text
    assert "application/json" in res.json()["error"]


# --- defect 4: timestamps -----------------------------------------------------------------------------------

@pytest.mark.parametrize("when", BAD_TIMES)
def test_bad_timestamps_are_a_422_and_nothing_is_stored(api, service, when):
    rid = f"r-hostile-{uuid.uuid4().hex[:12]}"
    res = timed(api, "POST", f"{service}/reports", json={"reports": [report(report_id=rid, created_at=when)]})
    assert res.status_code == 422, res.text
    assert names(res, "reports[0].created_at"), res.text
    not_stored(api, service, rid)
    res = timed(api, "POST", f"{service}/penalty", json={
        "as_of": when, "account": {"account_id": "a-1", "role": "seller"}, "violation": VIOLATION})
    assert res.status_code == 422 and names(res, "as_of"), res.text


@pytest.mark.parametrize("when, stored", [("2025-11-02T20:15:00+01:00", "2025-11-02T19:15:00+00:00"),
                                          ("2025-11-02T20:15:00", "2025-11-02T20:15:00+00:00"),
                                          ("2025-11-02 20:15:00.123456789Z", "2025-11-02T20:15:00.123456+00:00")])
def test_good_timestamps_are_read_as_utc(api, service, when, stored):
    rid = f"r-hostile-{uuid.uuid4().hex[:12]}"
    res = timed(api, "POST", f"{service}/reports", json={"reports": [report(report_id=rid, created_at=when)]})
    assert res.status_code == 200 and res.json()["accepted"] == [rid], res.text
    case = api.get(f"{service}/cases/case-{rid}").json()
    assert case["reports"][0]["created_at"] == stored, case["reports"][0]
