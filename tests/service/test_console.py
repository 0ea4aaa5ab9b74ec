"""The investigator console over HTTP against the running service: sign-in, sessions, CSRF, queue, case, resolve,
escaping and the security headers. (The browser tests drive the same pages in Chromium.)"""
from __future__ import annotations

import re
import uuid
from html import unescape

import httpx
import pandas as pd
import pytest
from conftest import as_request, client

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
       "base-uri 'none'; form-action 'self'")


@pytest.fixture(scope="module")
def recent(tables) -> pd.DataFrame:
    r = tables["reports"]
    return r[r["created_at"] > r["created_at"].max() - pd.Timedelta(days=20)].reset_index(drop=True)


def fresh(reports: pd.DataFrame) -> list[dict]:
    tag = uuid.uuid4().hex[:6]
    return [dict(r, report_id=f"{tag}-{r['report_id']}") for r in as_request(reports)]


def browser(service: str, token: str | None = None) -> httpx.Client:
    """A client that follows no redirects, holding a session cookie when given one."""
    headers = {"Cookie": f"docket_session={token}"} if token else {}
    return httpx.Client(base_url=service, follow_redirects=False, headers=headers, timeout=120)


def sign_in(service: str, key: str) -> httpx.Response:
    with browser(service) as b:
        return b.post("/console/sign-in", data={"key": key})


def session_of(service: str, key: str) -> httpx.Client:
    res = sign_in(service, key)
    assert res.status_code == 303, res.text
    return browser(service, re.match(r"docket_session=([^;]+);", res.headers["set-cookie"]).group(1))


def csrf_of(page: str) -> str:
    return unescape(re.search(r'name="csrf" value="([^"]+)"', page).group(1))


def case_ids(page: str) -> list[str]:
    return [unescape(m) for m in re.findall(r'<tr data-case-id="([^"]+)"', page)]


def test_sign_in_sets_an_httponly_strict_cookie_that_is_not_the_key(service, keys):
    key = keys["investigator"]
    res = sign_in(service, key)
    assert res.status_code == 303 and res.headers["location"] == "/console/queue"
    cookie = res.headers["set-cookie"]
    assert cookie.startswith("docket_session=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert key not in cookie and key.split("_")[2] not in cookie
    assert res.headers["content-security-policy"] == CSP


def test_a_wrong_key_gets_the_form_again_with_401(service):
    res = sign_in(service, "dk_nope_nope")
    assert res.status_code == 401
    assert '<input id="key" name="key" type="password"' in res.text and "not valid" in res.text
    assert "set-cookie" not in res.headers


def test_an_intake_key_gets_a_403_page(service, keys):
    res = sign_in(service, keys["intake"])
    assert res.status_code == 403 and "403" in res.text and "intake" in res.text
    assert "set-cookie" not in res.headers


@pytest.mark.parametrize("method,path", [("GET", "/console/queue"), ("GET", "/console/queue/rows"),
                                         ("GET", "/console/cases/case-x"), ("POST", "/console/claim"),
                                         ("GET", "/console/")])
def test_pages_without_a_session_send_the_browser_to_sign_in(service, method, path):
    with browser(service, token="not-a-session") as b:
        res = b.request(method, path)
    assert res.status_code == 303 and res.headers["location"] == "/console/sign-in"
    assert res.headers["content-security-policy"] == CSP


def test_every_page_sends_the_security_headers(service, keys):
    with session_of(service, keys["investigator"]) as b:
        for path in ("/console/sign-in", "/console/queue", "/console/queue/rows", "/console/static/console.css",
                     "/console/static/console.js", "/console/cases/no-such-case"):
            res = b.get(path)
            assert res.headers["content-security-policy"] == CSP, path
            assert res.headers["x-content-type-options"] == "nosniff", path
            assert res.headers["referrer-policy"] == "same-origin", path
        assert b.get("/console/cases/no-such-case").status_code == 404
        assert b.get("/console/static/pages.py").status_code == 404


def test_the_queue_page_lists_cases_in_the_order_of_get_queue(service, keys, recent):
    client(keys["intake"]).post(f"{service}/reports", json={"reports": fresh(recent.head(30))}).raise_for_status()
    api = client(keys["investigator"])
    with session_of(service, keys["investigator"]) as b:
        for _ in range(3):  # a sweep between the two reads may rescore; the order must then agree on a retry
            page = b.get("/console/queue")
            expected = [c["case_id"] for c in api.get(f"{service}/queue", params={"limit": 100}).json()]
            if case_ids(page.text) == expected:
                break
        assert page.status_code == 200 and '<table id="queue"' in page.text
        assert expected and case_ids(page.text) == expected
        assert case_ids(b.get("/console/queue/rows").text) == expected
        family = b.get("/console/queue", params={"family": "logistics"})
        assert case_ids(family.text) == [c["case_id"] for c in api.get(
            f"{service}/queue", params={"limit": 100, "family": "logistics"}).json()]
        assert b.get("/console/queue", params={"family": "weird"}).status_code == 422


def test_a_form_without_the_sessions_csrf_token_is_refused(service, keys):
    with session_of(service, keys["investigator"]) as b:
        assert b.post("/console/claim", data={}).status_code == 403
        assert b.post("/console/claim", data={"csrf": "forged"}).status_code == 403
        assert b.post("/console/sign-out", data={}).status_code == 403
        assert b.post("/console/cases/case-x/resolve", data={"valid": "false"}).status_code == 403


def test_claim_and_resolve_through_the_console(service, keys, recent):
    client(keys["intake"]).post(f"{service}/reports", json={"reports": fresh(recent.iloc[40:45])}).raise_for_status()
    api = client(keys["investigator"])
    with session_of(service, keys["investigator"]) as b:
        csrf = csrf_of(b.get("/console/queue").text)
        claimed = b.post("/console/claim", data={"csrf": csrf})
        assert claimed.status_code == 303 and claimed.headers["location"].startswith("/console/cases/")
        page = b.get(claimed.headers["location"])
        assert page.status_code == 200 and 'action="/console/cases/' in page.text
        case_id = unescape(re.search(r'<h1>Case <span class="id">([^<]+)</span>', page.text).group(1))
        assert 'name="valid" value="true"' in page.text and '<label for="severity">Severity</label>' in page.text
        # someone else's session sees the case without the form
        with session_of(service, keys["admin"]) as other:
            assert 'name="valid"' not in other.get(claimed.headers["location"]).text
        resolve = re.search(r'<form method="post" action="([^"]+/resolve)"', page.text).group(1)
        no_severity = b.post(resolve, data={"csrf": csrf, "valid": "true"})
        assert no_severity.status_code == 422 and "needs a severity" in no_severity.text
        done = b.post(resolve, data={"csrf": csrf, "valid": "true", "severity": "high", "notes": "checked <b>x</b>"})
        assert done.status_code == 303 and done.headers["location"] == claimed.headers["location"]
        after = b.get(done.headers["location"]).text
        assert "Outcome" in after and "<strong>valid</strong>" in after and "<strong>high</strong>" in after
        assert f"v-{case_id}" in after and "Account health now" in after
        assert "checked &lt;b&gt;x&lt;/b&gt;" in after
        assert 'name="valid"' not in after
        again = b.post(resolve, data={"csrf": csrf, "valid": "false"})
        assert again.status_code == 409
    assert case_id not in [c["case_id"] for c in api.get(f"{service}/queue", params={"limit": 1000}).json()]
    audit = client(keys["admin"]).get(f"{service}/audit", params={"entity_id": case_id}).json()
    actor = f"key:{keys['investigator'].split('_')[1]}"
    assert [e["actor"] for e in audit if e["action"] in ("claim", "resolve")] == [actor, actor]


def test_a_hostile_description_is_shown_as_text(service, keys, recent):
    report = fresh(recent.iloc[60:61])[0]
    report["description"] = HOSTILE
    client(keys["intake"]).post(f"{service}/reports", json={"reports": [report]}).raise_for_status()
    with session_of(service, keys["investigator"]) as b:
        page = b.get(f"/console/cases/case-{report['report_id']}")
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in page.text
    assert "<script>alert" not in page.text and "<img" not in page.text
    assert "<script" not in page.text.replace('<script src="/console/static/console.js" defer></script>', "")


def test_sign_out_ends_the_session(service, keys):
    res = sign_in(service, keys["admin"])
    token = re.match(r"docket_session=([^;]+);", res.headers["set-cookie"]).group(1)
    with browser(service, token) as b:
        assert b.get("/console/").headers["location"] == "/console/queue"
        csrf = csrf_of(b.get("/console/queue").text)
        out = b.post("/console/sign-out", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"].startswith("/console/sign-in")
        assert "Max-Age=0" in out.headers["set-cookie"]
    with browser(service, token) as b:  # the old cookie is worthless now
        assert b.get("/console/queue").headers["location"] == "/console/sign-in"


def _case_payload(reasons: list[dict], description: str = HOSTILE) -> dict:
    case = {"case_id": "case-r1", "kind": "report", "status": "claimed", "claimed_by": "key:me",
            "claim_expires_at": "2999-01-01T00:00:00+00:00", "category": "spam", "family": "behavioral",
            "subject_id": "acct-1", "opened_at": "2026-12-01T10:00:00+00:00",
            "deadline_at": "2026-12-02T10:00:00+00:00"}
    score = {"scored_by": "model", "priority": 42.0, "p_valid": 0.8, "fraud_risk": 0.1, "severity": "high",
             "severity_probabilities": {"low": 0.1, "medium": 0.2, "high": 0.6, "critical": 0.1}, "reasons": reasons}
    report = {"report_id": "r1", "description": description, "created_at": "2026-12-01T10:00:00+00:00",
              "reporter_type": "buyer", "reporter_id": "b1", "channel": "livestream", "score": score}
    subject = {"account_id": "acct-1", "role": "seller", "account_health": "excellent", "counting_violations": [],
               "active_penalties": [], "history": []}
    proposal = {"severity": "high", "stage": "confirmed", "actions": [{"type": "warning"}], "account_health": "fair",
                "reasons": ["policy rung 'first_high': ..."], "rung": "first_high", "points": 3, "policy_version": "p1"}
    return {"case": case, "alert": None, "reports": [report], "subject": subject, "proposed_penalty": proposal}


def test_the_case_page_draws_reasons_as_bars_and_escapes_text():
    from serving.console.pages import BAR_WIDTH, render
    from serving.console.sessions import Session

    reasons = [{"feature": "reporter_accuracy", "model": "validity", "priority_effect": 4.0, "value": 0.9},
               {"feature": "no_such_feature", "model": "fraud", "priority_effect": -2.0, "value": None}]
    session = Session("me", "investigator", "tok", None)
    page = render("case.html", session=session, path="/console/cases/case-r1", payload=_case_payload(reasons),
                  case=_case_payload(reasons)["case"], holds=True, outcome=None, violation=None,
                  severities=("low", "medium", "high", "critical"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<img" not in page
    assert "share of the reporter&#39;s reviewed reports found valid" in page  # the plain-language name
    assert "no_such_feature" in page  # no description: the raw name
    assert f'<rect width="{BAR_WIDTH}"' in page and f'<rect width="{BAR_WIDTH // 2}"' in page
    assert '<tr class="up">' in page and '<tr class="down">' in page
    assert "style=" not in page  # the CSP allows no inline styles
    assert 'name="valid" value="false"' in page and 'name="fraud_confirmed"' in page
    rules = render("case.html", session=session, path="/", payload=_case_payload(
        [{"rule": "rules_priority", "reporter_type": "buyer", "category": "spam"}]),
        case=_case_payload([])["case"], holds=False, outcome=None, violation=None, severities=())
    assert "Ranked by the rules" in rules and '<table class="reasons">' not in rules and 'name="valid"' not in rules
