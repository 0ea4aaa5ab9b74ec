"""The bodies that once hurt the service (issue 15, defects 2-5), in one place: tests/service/test_hostile.py
checks each is a prompt 4xx naming what was wrong, and the fuzz suite of `make bench` (benchmarks/fuzz_bench.py)
replays them all beside schemathesis while it watches the worker's memory.

Kept here rather than in the tests so the benchmark and the tests read the same corpus.
"""
from __future__ import annotations

import uuid
from collections.abc import Iterator

FAST = 5.0  # seconds: a refusal is immediate; the old failures took BentoML's 60 s timeout

ROUTES = ["/score", "/rank", "/reports", "/events", "/penalty", "/violations", "/keys", "/predict/fraud",
          "/queue/claim", "/violations/v-x/appeal", "/violations/v-x/remedial", "/cases/case-x/resolve"]
BATCH_ROUTES = ["/score", "/rank", "/reports", "/events", "/predict/fraud"]
OBJECT_ROUTES = [r for r in ROUTES if r not in BATCH_ROUTES]


def report(**over) -> dict:
    body = {"report_id": f"r-hostile-{uuid.uuid4().hex[:12]}", "created_at": "2025-11-02T20:15:00Z",
            "reporter_id": "a0004142", "reporter_type": "buyer", "channel": "livestream", "subject_id": "a0000692",
            "show_id": None, "order_id": None, "category": "harassment", "description": "rude in chat"}
    body.update(over)
    return body


SURROGATE = b'{"reports": [{"report_id": "r-1", "description": "\\ud800"}]}'
MALFORMED = {
    "lone surrogate": (SURROGATE, "reports[0].description"),
    "NUL character": (b'{"reports": [{"report_id": "r-1", "description": "a\\u0000b"}]}', "reports[0].description"),
    "5,000-digit integer": (b'{"reports": [{"amount": ' + b"9" * 5000 + b"}]}", "5000 characters"),
    "5,000 deep": (b'{"reports": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nested 5001 deep"),
    "NaN": (b'{"reports": [{"amount": NaN}]}', "NaN"),
    "Infinity by overflow": (b'{"reports": [{"amount": 1e999}]}', "out of range"),
    "not UTF-8": (b'{"reports": ["\xff\xfe"]}', "not UTF-8"),
}


MEGA = "x" * (1024 * 1024)
LONG_TEXT = [
    ("/reports", lambda rid: {"reports": [report(report_id=MEGA)]}, "reports[0].report_id"),
    ("/reports", lambda rid: {"reports": [report(report_id=rid, description="y" * 70_000)]}, "reports[0].description"),
    ("/reports", lambda rid: {"reports": [report(report_id=rid, subject_id="s" * 129)]}, "reports[0].subject_id"),
    ("/score", lambda rid: {"reports": [report(report_id=rid, order_id="o" * 129)]}, "reports[0].order_id"),
    ("/events", lambda rid: {"accounts": [{"account_id": "a" * 129, "created_at": "2025-01-01T00:00:00Z",
                                           "role": "seller", "verified": False}]}, "accounts[0].account_id"),
    ("/violations", lambda rid: {"violation_id": "v" * 129, "account": {"account_id": "a-1", "role": "seller"},
                                 "violation": {"family": "behavioral", "category": "spam", "severity": "low",
                                               "occurred_at": "2025-05-31T12:00:00Z"}}, "violation_id"),
    ("/violations", lambda rid: {"violation_id": f"v-{rid}", "account": {"account_id": "a-1", "role": "seller"},
                                 "actor": "n" * 129,
                                 "violation": {"family": "behavioral", "category": "spam", "severity": "low",
                                               "occurred_at": "2025-05-31T12:00:00Z"}}, "actor"),
    ("/penalty", lambda rid: {"as_of": "2025-06-01T00:00:00Z", "account": {"account_id": "a" * 129, "role": "seller"},
                              "violation": {"family": "behavioral", "category": "spam", "severity": "low",
                                            "occurred_at": "2025-05-31T12:00:00Z"}}, "account.account_id"),
    ("/violations/v-x/appeal", lambda rid: {"outcome": "upheld", "why": "w" * 10_001}, "why"),
    ("/queue/claim", lambda rid: {"case_id": "c" * 200}, "case_id"),
    ("/cases/case-x/resolve", lambda rid: {"valid": False, "notes": "n" * 10_001}, "notes"),
]


VIOLATION = {"family": "behavioral", "category": "spam", "severity": "low", "occurred_at": "2025-05-31T12:00:00Z"}
EMPTY = [
    ("/keys", {}, "role"),
    ("/keys", None, "role"),
    ("/violations", {"violation_id": "v-empty-1", "account": {}, "violation": VIOLATION}, "account.account_id"),
    ("/violations", {"violation_id": "v-empty-2", "account": {"account_id": "a-1", "role": "seller"},
                     "violation": {}}, "violation.family"),
    ("/violations", {}, "violation_id"),
    ("/penalty", {"as_of": "2025-06-01T00:00:00Z", "account": {}, "violation": VIOLATION}, "account.role"),
    ("/penalty", {"as_of": "2025-06-01T00:00:00Z", "account": {"account_id": "a-1", "role": "seller"},
                  "violation": {}}, "violation.occurred_at"),
    ("/penalty", {"as_of": "2025-06-01T00:00:00Z", "account": {"account_id": "a-1", "role": "seller"},
                  "violation": VIOLATION, "history": [{}]}, "history[0].family"),
    ("/violations/v-x/appeal", {}, "outcome"),
    ("/violations/v-x/remedial", None, "completed_at"),
]


BAD_TIMES = ["now", "today", "yesterday", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00",
             "1000-01-01T00:00:00Z", "1677-09-22T00:00:00Z", "1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z",
             "9999-12-31T23:59:59Z", "2025-13-01T00:00:00Z", "2025-11-02T25:00:00Z", "1730000000", "2025/11/02",
             "Nov 2 2025", "2025-11-02T20:15:00+99:00", ""]

FORMS = ["multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"]
NUL_PARAMS = [  # (path, query, field): PostgreSQL refuses NUL in text (schemathesis found /audit?entity_id=%00 a 500)
    ("/audit", {"entity_id": "a\x00b"}, "entity_id"),
    ("/queue", {"family": "\x00"}, "family"),
    ("/accounts/a%00b/health", {}, "account_id"),
    ("/cases/case-%00", {}, "case_id"),
    ("/accounts/x/health", {"as_of": "2025-01-01T00:00:00\x00Z"}, "as_of"),
]

OVERSIZE = 70 * 1024 * 1024  # bytes: over every route's body limit (64 MiB for batches, 1 MiB for the rest)


def requests(oversize: bool = True) -> Iterator[tuple[str, str, dict]]:
    """Every hostile request as (method, path, httpx keyword arguments): each must be answered with a 4xx.
    `oversize` adds one 70 MB body per route (the bench sends them; they are refused while they stream)."""
    json_type = {"content-type": "application/json"}
    for path in ROUTES:
        for raw, _ in MALFORMED.values():
            yield "POST", path, {"content": raw, "headers": json_type}
        for content_type in FORMS:
            yield "POST", path, {"content": b"--x\r\n\r\n", "headers": {"content-type": content_type}}
        if oversize:
            yield "POST", path, {"content": b'{"reports": ["' + b"x" * OVERSIZE + b'"]}', "headers": json_type}
    for path, body, _ in LONG_TEXT:
        yield "POST", path, {"json": body(f"r-hostile-{uuid.uuid4().hex[:12]}")}
    for path, body, _ in EMPTY:
        yield "POST", path, {"json": body}
    for when in BAD_TIMES:
        yield "POST", "/reports", {"json": {"reports": [report(created_at=when)]}}
        yield "POST", "/penalty", {"json": {"as_of": when, "account": {"account_id": "a-1", "role": "seller"},
                                            "violation": VIOLATION}}
    for path, params, _ in NUL_PARAMS:
        yield "GET", path, {"params": params}
