"""The investigator console in a real headless Chromium against the real running service.

Sign in, see the queue in the API's order, claim, resolve as valid/high, see the account's health change and
the case leave the queue, sign out; an intake key is refused; a hostile description is rendered as text.
Each page visited is saved as console-<page>.png (build/screenshots/, or docs/img with `make screenshots`).
"""
from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from conftest import as_request, client
from playwright.sync_api import expect

HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
HOSTILE_CATEGORY = "harassment"
FRESH_CATEGORY = "threats_of_harm"  # few open cases in the test session's store: the filtered queue shows them all


@pytest.fixture(scope="module")
def seeded(service, keys, tables) -> dict:
    """Fresh reports dated a few minutes ago, so the queue always has cases to claim; one has a hostile description,
    and one is about a new account with a clean record (health excellent), so one high violation changes its health."""
    reports = tables["reports"]
    tag, now = uuid.uuid4().hex[:6], datetime.now(UTC)
    ordinary = as_request(reports[reports["category"] != HOSTILE_CATEGORY].tail(8))
    for i, r in enumerate(ordinary):
        r.update(report_id=f"ui-{tag}-{r['report_id']}", created_at=(now - timedelta(minutes=5 + i)).isoformat())
    hostile = as_request(reports[reports["category"] == HOSTILE_CATEGORY].tail(1))[0]
    hostile.update(report_id=f"xss-{tag}", description=HOSTILE, created_at=(now - timedelta(minutes=4)).isoformat())
    fresh = as_request(reports[(reports["category"] == FRESH_CATEGORY) & reports["reporter_id"].notna()].tail(1))[0]
    fresh.update(report_id=f"new-{tag}", subject_id=f"a-new-{tag}", order_id=None,
                 description="Said he knows where I live and will come after the show. Chat log attached.",
                 created_at=(now - timedelta(minutes=3)).isoformat())
    account = {"account_id": fresh["subject_id"], "created_at": (now - timedelta(days=30)).isoformat(), "role": "buyer",
               "verified": True}
    res = client(keys["intake"]).post(f"{service}/events", json={"accounts": [account]})
    assert res.status_code == 200, res.text
    res = client(keys["intake"]).post(f"{service}/reports", json={"reports": ordinary + [hostile, fresh]})
    assert res.status_code == 200, res.text
    assert sorted(res.json()["accepted"]) == sorted(r["report_id"] for r in ordinary + [hostile, fresh])
    return {"ordinary": ordinary, "hostile": hostile, "fresh": fresh, "since": now - timedelta(minutes=30)}


def watch_dialogs(page) -> list[str]:
    """Record (and dismiss) every JavaScript dialog the page opens: none may ever fire."""
    fired: list[str] = []

    def on_dialog(dialog) -> None:
        fired.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return fired


def session_cookie(page) -> dict | None:
    return next((c for c in page.context.cookies() if c["name"] == "docket_session"), None)


def sign_in(page, service: str, key: str):
    """Fill in the sign-in form and submit it; returns the response to the POST."""
    page.goto(f"{service}/console/sign-in")
    page.get_by_label("API key").fill(key)
    with page.expect_response(lambda r: r.request.method == "POST" and "/console/" in r.url) as posted:
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    return posted.value


def normal(text: str) -> str:
    return " ".join(text.replace("_", " ").lower().split())


ORDER_ATTEMPTS = 30


def test_investigator_signs_in_claims_resolves_and_signs_out(page, screenshot, service, keys, seeded):
    dialogs = watch_dialogs(page)
    inv = client(keys["investigator"])

    page.goto(f"{service}/console/sign-in")
    key_input = page.get_by_label("API key")
    assert key_input.get_attribute("id") == "key" and key_input.get_attribute("type") == "password"
    screenshot(page, "sign-in")

    sign_in(page, service, keys["investigator"])
    page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    cookie = session_cookie(page)
    assert cookie is not None and cookie["httpOnly"], page.context.cookies()

    # The queue page lists the open cases in exactly the API's order (fetched on both sides of the page load,
    # so a re-rank between the two requests cannot make the comparison flaky).
    # Right after start the sweep is still rescoring the imported reports with the models, which re-ranks the
    # queue: the comparison is retried until one page load falls between two equal API answers.
    for _ in range(ORDER_ATTEMPTS):
        before = [c["case_id"] for c in inv.get(f"{service}/queue", params={"limit": 100}).json()]
        page.reload()
        rows = page.locator("#queue tbody tr").evaluate_all("rows => rows.map(r => r.dataset.caseId)")
        after = [c["case_id"] for c in inv.get(f"{service}/queue", params={"limit": 100}).json()]
        if before == after:
            break
        page.wait_for_timeout(2000)
    assert rows and rows in (before, after), (rows, after)
    assert page.get_by_label(re.compile("family", re.I)).count() >= 1
    assert page.get_by_label(re.compile("category", re.I)).count() >= 1
    screenshot(page, "queue")

    with page.expect_navigation() as claimed:
        page.get_by_role("button", name="Claim next").click()
    page.wait_for_url(re.compile(r"/console/cases/[^/?#]+$"))
    assert claimed.value is None or claimed.value.ok, (claimed.value.status, page.inner_text("body")[:2000])
    case_id = unquote(page.url.rstrip("/").rsplit("/", 1)[1])
    detail = inv.get(f"{service}/cases/{case_id}").json()
    assert detail["case"]["status"] == "claimed", detail["case"]
    subject = detail["case"]["subject_id"]

    page.locator('input[name="valid"][value="true"]').check()
    page.locator('select[name="severity"]').select_option("high")
    assert page.locator('input[type="checkbox"][name="fraud_confirmed"]').count() == 1
    page.locator('textarea[name="notes"]').fill("resolved from the console in the browser test")
    with page.expect_navigation() as resolved:
        page.get_by_role("button", name="Resolve").click()
    page.wait_for_load_state()
    assert resolved.value is None or resolved.value.ok, (resolved.value.status, page.inner_text("body")[:2000])

    # The case is closed, it left the queue, and the ledger holds the violation against the subject.
    assert inv.get(f"{service}/cases/{case_id}").json()["case"]["status"] == "resolved"
    assert case_id not in [c["case_id"] for c in inv.get(f"{service}/queue", params={"limit": 1000}).json()]
    health = inv.get(f"{service}/accounts/{subject}/health").json()
    assert f"v-{case_id}" in [v["violation_id"] for v in health["history"]], health
    opened = datetime.fromisoformat(detail["case"]["opened_at"])
    # The session's store also holds the simulated (2025) reports, which are past the expiry window: a case
    # opened by them is recorded but no longer counts; one of this test's fresh cases must count.
    if (opened if opened.tzinfo else opened.replace(tzinfo=UTC)) >= seeded["since"]:
        assert f"v-{case_id}" in health["counting_violations"], health
    shown = normal(page.inner_text("body"))
    assert "resolved" in shown and "high" in shown, shown[:2000]
    assert normal(health["account_health"]) in shown, (health["account_health"], shown[:2000])
    page.goto(f"{service}/console/queue")
    expect(page.locator("#queue tbody tr").first).to_be_visible()
    expect(page.locator(f'#queue tr[data-case-id="{case_id}"]')).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    cookie = session_cookie(page)
    assert cookie is None or not cookie["value"], cookie
    page.goto(f"{service}/console/queue")
    assert page.locator("#queue").count() == 0  # signed out: no queue without signing in again
    assert dialogs == []


def test_resolving_valid_high_changes_the_accounts_health_and_the_case_leaves_the_queue(page, screenshot, service,
                                                                                         keys, seeded):
    """The case of a new account (clean record, health excellent) is claimed by name with the investigator's key
    (the console acts as the same identity), opened from the queue page and resolved valid/high in the console."""
    dialogs = watch_dialogs(page)
    inv = client(keys["investigator"])
    case_id, account = f"case-{seeded['fresh']['report_id']}", seeded["fresh"]["subject_id"]

    def api_queue() -> list[str]:
        rows = inv.get(f"{service}/queue", params={"limit": 1000, "category": FRESH_CATEGORY}).json()
        return [c["case_id"] for c in rows]

    assert case_id in api_queue()
    assert inv.get(f"{service}/accounts/{account}/health").json()["account_health"] == "excellent"
    sign_in(page, service, keys["investigator"])
    page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    page.goto(f"{service}/console/accounts/{account}")
    expect(page.locator(".health").first).to_have_text(re.compile("^excellent$", re.I))

    # The queue filtered to the case's category lists it; held by the investigator, it opens with the resolve form.
    page.goto(f"{service}/console/queue")
    page.get_by_label("Category").select_option(FRESH_CATEGORY)
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(rf"category={FRESH_CATEGORY}"))
    row = page.locator(f'#queue tbody tr[data-case-id="{case_id}"]')
    expect(row).to_have_count(1)
    claimed = inv.post(f"{service}/queue/claim", json={"case_id": case_id})
    assert claimed.status_code == 200 and claimed.json()["case"]["case_id"] == case_id, claimed.text
    row.get_by_role("link").click()
    page.wait_for_url(re.compile(r"/console/cases/[^/?#]+$"))
    expect(page.locator(".status-claimed")).to_contain_text(claimed.json()["case"]["claimed_by"])
    expect(page.get_by_role("button", name="Resolve case")).to_be_visible()
    screenshot(page, "case")

    page.get_by_label("valid", exact=True).check()
    page.get_by_label("Severity").select_option("high")
    page.get_by_label("Notes").fill("threat confirmed in the chat log")
    with page.expect_navigation():
        page.get_by_role("button", name="Resolve case").click()
    outcome = page.locator("section.outcome")
    expect(outcome).to_contain_text("valid")
    expect(outcome).to_contain_text("high")
    after = inv.get(f"{service}/accounts/{account}/health").json()
    assert after["account_health"] != "excellent" and f"v-{case_id}" in after["counting_violations"], after
    expect(outcome.locator(".health")).to_have_text(re.compile(f"^{after['account_health']}$", re.I))
    screenshot(page, "case-resolved")

    page.goto(f"{service}/console/accounts/{account}")
    expect(page.locator(".health").first).to_have_text(re.compile(f"^{after['account_health']}$", re.I))
    expect(page.get_by_text(f"v-{case_id}").first).to_be_visible()
    screenshot(page, "account")

    # Gone from the queue: the console's (same filter) and the API's.
    page.goto(f"{service}/console/queue?category={FRESH_CATEGORY}")
    expect(page.locator("#queue")).to_have_count(1)
    expect(row).to_have_count(0)
    assert case_id not in api_queue()
    assert dialogs == []


def test_the_alerts_and_models_pages_show_what_the_api_serves(page, screenshot, service, keys):
    inv = client(keys["investigator"])
    sign_in(page, service, keys["investigator"])
    page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    page.goto(f"{service}/console/alerts")
    links = page.locator(".alert-card a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    shown = {unquote(href.rsplit("/", 1)[1]) for href in links}
    alerts = {a["case_id"] for a in inv.get(f"{service}/alerts").json()}
    assert shown <= alerts and (shown or not alerts), (shown, alerts)
    screenshot(page, "alerts")

    page.goto(f"{service}/console/models")
    for name, version in inv.get(f"{service}/models").json()["model_versions"].items():
        row = page.get_by_role("row", name=re.compile(rf"{re.escape(name)}\s+{re.escape(str(version))}"))
        expect(row).to_be_visible()
    expect(page.locator("pre.model-card")).to_be_visible()
    screenshot(page, "models")


def test_an_intake_key_is_refused(page, service, keys):
    dialogs = watch_dialogs(page)
    res = sign_in(page, service, keys["intake"])
    assert res.status == 403
    text = page.inner_text("body")
    assert "403" in text and "intake" in text.lower(), text[:2000]
    assert session_cookie(page) is None
    page.goto(f"{service}/console/queue")
    assert page.locator("#queue").count() == 0
    assert dialogs == []


def test_a_hostile_description_is_shown_as_text_and_never_run(page, service, keys, seeded):
    dialogs = watch_dialogs(page)
    sign_in(page, service, keys["investigator"])
    page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    case_id = f"case-{seeded['hostile']['report_id']}"
    res = page.goto(f"{service}/console/cases/{case_id}")
    assert res is not None and res.status == 200
    page.wait_for_load_state("load")
    page.wait_for_timeout(500)  # time for an injected <img onerror> to fire, if one had been parsed
    text = page.inner_text("body")
    assert "<script>alert(1)</script>" in text and "<img src=x onerror=alert(2)>" in text, text[:2000]
    assert page.locator('img[src="x"]').count() == 0
    assert page.eval_on_selector_all("script", "els => els.filter(e => e.textContent.includes('alert(')).length") == 0
    assert dialogs == []
