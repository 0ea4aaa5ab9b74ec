"""The investigator console over HTTP against the running service: sign-in, sessions, CSRF, queue, case, resolve,
escaping and the security headers. (The browser tests drive the same pages in Chromium.)"""
from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime
from html import unescape
from urllib.parse import quote, unquote

import httpx
import pandas as pd
import pytest
from conftest import as_request, client, make_keys

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
    assert key not in cookie and key.split("_", 2)[2] not in cookie  # the secret may itself hold "_"
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
        for path in ("/console/nowhere", "/console/cases/x/nowhere", "/console/%3Cscript%3E"):
            lost = b.get(path)  # a page of the console's, not the API's JSON 404, and the path shown as text
            assert lost.status_code == 404 and lost.headers["content-type"].startswith("text/html"), path
            assert lost.headers["content-security-policy"] == CSP and "Back to the queue" in lost.text, path
        assert "no console page at /console/&lt;script&gt;" in b.get("/console/%3Cscript%3E").text
    with browser(service) as anonymous:
        lost = anonymous.post("/console/nowhere")
        assert lost.status_code == 404 and 'href="/console/sign-in"' in lost.text


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


# -- alerts, accounts, models --------------------------------------------------------------------

def _burst(tables, scenario: str) -> pd.DataFrame:
    """The densest hour of one simulator scenario's reports about one subject (as test_queue_api builds it)."""
    r = tables["reports"].merge(tables["truth_reports"][["report_id", "scenario"]], on="report_id")
    r = r[r["scenario"] == scenario].drop(columns="scenario")
    best = None
    for _, group in r.groupby("subject_id"):
        times = group.sort_values(["created_at", "report_id"])
        end = times["created_at"].reset_index(drop=True)
        end = end.searchsorted(end + pd.Timedelta(hours=1))
        k = int((end - range(len(times))).argmax())
        if best is None or end[k] - k > len(best):
            best = times.iloc[k:end[k]]
    return best.reset_index(drop=True)


@pytest.mark.parametrize("path", ["/console/alerts", "/console/accounts/acct-x", "/console/models",
                                  "/console/models/plots/x.png"])
def test_the_new_pages_need_a_session(service, path):
    with browser(service, token="not-a-session") as b:
        res = b.get(path)
    assert res.status_code == 303 and res.headers["location"] == "/console/sign-in"
    assert res.headers["content-security-policy"] == CSP


def test_the_alerts_page_shows_the_open_alerts_of_get_alerts(service, keys, tables):
    res = client(keys["intake"]).post(f"{service}/reports", json={"reports": fresh(_burst(tables, "brigading"))})
    assert res.json()["alerts"], res.json()
    alerts = client(keys["investigator"]).get(f"{service}/alerts").json()
    with session_of(service, keys["investigator"]) as b:
        page = b.get("/console/alerts")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        assert '<a href="/console/alerts" aria-current="page">Alerts</a>' in page.text
        assert '<a href="/console/models">Models</a>' in b.get("/console/queue").text
    text = unescape(page.text)
    linked = [unquote(unescape(m)) for m in re.findall(r'<a href="/console/cases/([^"]+)">', page.text)]
    assert linked == [a["case_id"] for a in alerts]
    for a in alerts:
        assert f"<dd>{a['distinct_reporters']}</dd>" in text and f"<dd>{a['count']}</dd>" in text
        assert all(why in text for why in a["reasons"])
    assert {a["verdict"] for a in alerts} <= {"incident", "brigading"}
    assert sum(f'<span class="tag alert">{a["verdict"]}</span>' in page.text for a in alerts) >= 1
    assert len(re.findall(r'<section class="card alert-card"', page.text)) == len(alerts)


def _resolved_case(service: str, keys: dict, reports: pd.DataFrame) -> tuple[str, str]:
    """A case claimed and resolved valid/high through the console: (case id, the subject's account page link)."""
    client(keys["intake"]).post(f"{service}/reports", json={"reports": fresh(reports)}).raise_for_status()
    with session_of(service, keys["investigator"]) as b:
        csrf = csrf_of(b.get("/console/queue").text)
        where = b.post("/console/claim", data={"csrf": csrf}).headers["location"]
        page = b.get(where).text
        case_id = unescape(re.search(r'<h1>Case <span class="id">([^<]+)</span>', page).group(1))
        resolve = re.search(r'<form method="post" action="([^"]+/resolve)"', page).group(1)
        assert b.post(resolve, data={"csrf": csrf, "valid": "true", "severity": "high"}).status_code == 303
        link = re.search(r'<dt>Subject</dt><dd><a href="(/console/accounts/[^"]+)">', b.get(where).text).group(1)
    return case_id, unescape(link)


def test_the_account_page_shows_health_and_only_admins_get_the_forms(service, keys, recent):
    case_id, link = _resolved_case(service, keys, recent.iloc[80:83])
    violation = f"v-{case_id}"
    account_id = unquote(link.rsplit("/", 1)[1])
    health = client(keys["investigator"]).get(f"{service}/accounts/{account_id}/health").json()
    with session_of(service, keys["investigator"]) as b:
        page = b.get(link)
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        text = unescape(page.text)
        assert f'<h1>Account <span class="id">{account_id}</span></h1>' in text
        assert health["account_health"] in text and violation in text
        assert all(v in text for v in health["counting_violations"])
        assert all(p["type"] in text for p in health["active_penalties"])
        assert "/appeal" not in page.text and "/remedial" not in page.text  # no forms for an investigator
        csrf = csrf_of(page.text)
        for action, data in (("appeal", {"outcome": "overturned", "why": "x"}),
                             ("remedial", {"completed_at": "2999-01-01T00:00", "why": "x"})):
            refused = b.post(f"/console/violations/{quote(violation)}/{action}", data={"csrf": csrf, **data})
            assert refused.status_code == 403 and "admin" in refused.text
        missing = b.get("/console/accounts/no-such-account")
        assert missing.status_code == 404 and "no-such-account" in unescape(missing.text)
    audit = client(keys["admin"]).get(f"{service}/audit", params={"entity_id": violation}).json()
    assert not [e for e in audit if e["action"] in ("violation.appealed", "violation.remedial_completed")]


def test_an_admin_records_an_appeal_and_a_remedial_step_from_the_account_page(service, keys, recent):
    case_id, link = _resolved_case(service, keys, recent.iloc[90:93])
    violation = f"v-{case_id}"
    path = f"/console/violations/{quote(violation)}"  # as the page's urlencode spells it
    with session_of(service, keys["admin"]) as b:
        page = b.get(link).text
        assert f'action="{path}/appeal"' in page and f'action="{path}/remedial"' in page
        assert 'name="outcome" value="upheld"' in page and 'name="outcome" value="overturned"' in page
        csrf = csrf_of(page)
        assert b.post(f"{path}/appeal", data={"outcome": "overturned", "why": "x"}).status_code == 403  # no CSRF
        bad = b.post(f"{path}/appeal", data={"csrf": csrf, "outcome": "maybe", "why": ""})
        assert bad.status_code == 422 and "outcome" in bad.text and "why: missing field" in bad.text
        assert b.post("/console/violations/v-none/appeal",
                      data={"csrf": csrf, "outcome": "upheld", "why": "x"}).status_code == 404
        done = b.post(f"{path}/appeal", data={"csrf": csrf, "outcome": "overturned", "why": "evidence <b>new</b>"})
        assert done.status_code == 303 and unquote(done.headers["location"]) == unquote(link)
        after = b.get(link).text
        assert "<dd>overturned</dd>" in after and f'action="{path}/appeal"' not in after  # no second appeal form
        again = b.post(f"{path}/appeal", data={"csrf": csrf, "outcome": "upheld", "why": "second look"})
        assert again.status_code == 409 and "was already appealed: overturned" in again.text  # one appeal
        too_early = b.post(f"{path}/remedial", data={"csrf": csrf, "completed_at": "2000-01-01T00:00", "why": "q"})
        assert too_early.status_code == 422 and "precedes" in too_early.text
        time.sleep(1.1)  # a whole second after the recording: the form's time has no fractions
        at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # a datetime-local value: UTC, no zone
        remedial = b.post(f"{path}/remedial", data={"csrf": csrf, "completed_at": at, "why": "quiz"})
        assert remedial.status_code == 303
        after = b.get(link).text
        assert f'action="{path}/remedial"' not in after and f"<dd>{at.replace('T', ' ')[:16]} UTC</dd>" in after
    audit = client(keys["admin"]).get(f"{service}/audit", params={"entity_id": violation}).json()
    admin = f"key:{keys['admin'].split('_')[1]}"
    appealed = [e for e in audit if e["action"] == "violation.appealed"]
    assert [(e["actor"], e["after"], e["why"]) for e in appealed] == [(admin, {"appeal": "overturned"},
                                                                         "evidence <b>new</b>")]
    assert [e["actor"] for e in audit if "remedial" in e["action"]] == [admin]


def test_the_models_page_shows_the_versions_the_model_card_and_the_plots(service, keys):
    models = client(keys["investigator"]).get(f"{service}/models").json()
    with session_of(service, keys["investigator"]) as b:
        page = b.get("/console/models")
        assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
        for name, version in models["model_versions"].items():
            assert f'<td>{name}</td><td class="id">{version}</td>' in page.text
        assert '<pre class="model-card">' in page.text and "<script" not in page.text.replace(
            '<script src="/console/static/console.js" defer></script>', "")
        plots = [unescape(p) for p in re.findall(r'<a href="(/console/models/plots/[^"]+)"', page.text)]
        assert plots and any("importance_validity.png" in p for p in plots)
        png = b.get(plots[0])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG") and png.headers["content-security-policy"] == CSP
        for name in ("nope.png", "..%2Fmodel_card.md", "model_card.md"):
            assert b.get(f"/console/models/plots/{name}").status_code == 404, name


def test_the_models_page_says_when_no_models_are_loaded(launch_service, tmp_path):
    (tmp_path / "no-data").mkdir()
    env = {"DOCKET_DATA_DIR": str(tmp_path / "no-data"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'empty.db'}",
           "DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}"}
    url = launch_service(env, wait_ready=False)
    own = make_keys(env["DOCKET_DATABASE_URL"])
    with session_of(url, own["investigator"]) as b:
        page, plot = b.get("/console/models"), b.get("/console/models/plots/importance_validity.png")
    assert page.status_code == 503 and "models are not loaded yet" in page.text
    assert page.headers["content-security-policy"] == CSP and plot.status_code == 503


def test_an_open_case_is_claimed_from_its_own_page_and_refused_to_a_second_investigator(service, keys, recent):
    batch = fresh(recent.iloc[60:61])
    client(keys["intake"]).post(f"{service}/reports", json={"reports": batch}).raise_for_status()
    case = f"/console/cases/{quote('case-' + batch[0]['report_id'], safe='')}"
    with session_of(service, keys["investigator"]) as first, session_of(service, keys["admin"]) as second:
        page = first.get(case).text
        assert "Claim this case" in page and 'name="valid"' not in page
        claimed = first.post(f"{case}/claim", data={"csrf": csrf_of(page)})
        assert claimed.status_code == 303 and claimed.headers["location"] == case
        held = first.get(case).text
        assert 'name="valid"' in held and "Claim this case" not in held
        theirs = second.get(case).text
        assert "Claim this case" not in theirs and "holds this case until" in theirs
        refused = second.post(f"{case}/claim", data={"csrf": csrf_of(theirs)})
        assert refused.status_code == 409 and "key:" in refused.text
        assert first.post(f"{case}/claim", data={"csrf": "forged"}).status_code == 403


def test_feature_values_are_shown_as_people_read_them():
    from serving.console.pages import plain_value

    assert [plain_value(v) for v in (29.997916666666665, 0.3333333, 1403.2968, 7, None, "harassment", True)] == \
        ["30", "0.333", "1,403", "7", "—", "harassment", "True"]
