"""The console's accessibility in a real headless Chromium: keyboard use, labelled controls, contrast (WCAG AA)
and narrow screens, on every page: sign-in, queue, a case with its resolve form, alerts, an account with an
admin's appeal and remedial forms, models, and an error page.

The checks run in the page (the scripts below) and name every failing element with a selector, so a failure
says what to fix.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from conftest import as_request, client
from playwright.sync_api import expect

PAGES = ["sign-in", "queue", "case", "alerts", "account", "models", "error"]
WIDTHS = [375, 1280]
MAX_TAB_STOPS = 30  # per page: the queue's rows are a hundred links alike

# Shared by the page scripts: colours, contrast (WCAG 2.x relative luminance), backgrounds, selectors.
HELPERS = r"""
const parse = (c) => {
  const m = /^rgba?\(([^)]*)\)$/.exec(c || "");
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(parseFloat);
  return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
};
const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
const lum = (c) => {
  const f = (v) => { v /= 255; return v <= 0.04045 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]);
};
const ratio = (a, b) => { const [x, y] = [lum(a), lum(b)].sort((p, q) => q - p); return (x + 0.05) / (y + 0.05); };
const background = (el) => {  // the colour behind el: its own and its ancestors' backgrounds, down to an opaque one
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c[3] > 0) { layers.push(c); if (c[3] >= 1) break; }
  }
  return layers.reverse().reduce((bg, layer) => over(layer, bg), [255, 255, 255, 1]);
};
const selector = (el) => {
  const parts = [];
  for (let e = el; e && e.nodeType === 1 && parts.length < 4; e = e.parentElement) {
    let s = e.tagName.toLowerCase();
    if (e.id) { parts.unshift(s + "#" + CSS.escape(e.id)); break; }
    if (e.classList.length) s += "." + [...e.classList].map(c => CSS.escape(c)).join(".");
    const same = e.parentElement ? [...e.parentElement.children].filter(x => x.tagName === e.tagName) : [];
    if (same.length > 1) s += `:nth-of-type(${same.indexOf(e) + 1})`;
    parts.unshift(s);
  }
  return parts.join(" > ");
};
const hidden = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const s = getComputedStyle(e);
    if (s.display === "none" || s.visibility === "hidden" || parseFloat(s.opacity) === 0) return true;
    if ((s.clip && s.clip !== "auto") || (s.clipPath && s.clipPath !== "none")) return true;
  }
  const r = el.getBoundingClientRect();
  return r.width < 2 || r.height < 2 || r.right <= 0 || r.bottom <= 0;
};
"""

CONTRAST_JS = "() => {" + HELPERS + r"""
  const TEXT_INPUTS = ["text", "password", "search", "email", "url", "tel", "number", "datetime-local", "date", "time"];
  const failing = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    if (el.closest("svg, script, style, option")) continue;
    const control = el.tagName === "SELECT" || el.tagName === "TEXTAREA"
      || (el.tagName === "INPUT" && TEXT_INPUTS.includes(el.type));
    const text = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!(control || text) || hidden(el)) continue;
    const s = getComputedStyle(el);
    const bg = background(el);
    const fg = over(parse(s.color), bg);
    const size = parseFloat(s.fontSize), bold = parseInt(s.fontWeight, 10) >= 700;
    const need = size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5;
    const got = ratio(fg, bg);
    checked += 1;
    if (got < need) failing.push({selector: selector(el), text: (el.innerText || el.value || "").trim().slice(0, 40),
                                  color: s.color, background: `rgb(${bg.slice(0, 3).map(Math.round).join(", ")})`,
                                  ratio: Math.round(got * 100) / 100, need});
  }
  return {checked, failing};
}"""

LABELS_JS = "() => {" + HELPERS + r"""
  const problems = [];
  const seen = new Map();
  for (const el of document.querySelectorAll("[id]")) seen.set(el.id, (seen.get(el.id) || 0) + 1);
  for (const [id, n] of seen) if (n > 1) problems.push(`id "${id}" is used ${n} times (a label for it is ambiguous)`);
  let controls = 0;
  for (const el of document.querySelectorAll("input, select, textarea, button")) {
    if (el.type === "hidden") continue;
    controls += 1;
    const labelledBy = (el.getAttribute("aria-labelledby") || "").split(/\s+/).filter(Boolean)
      .map(id => (document.getElementById(id) || {}).textContent || "").join(" ");
    const labels = [...(el.labels || [])].map(l => l.textContent).join(" ");
    const own = el.tagName === "BUTTON" ? el.textContent
      : (["submit", "button", "reset"].includes(el.type) ? el.value : "");
    const name = [el.getAttribute("aria-label") || "", labelledBy, labels, own, el.title || ""].join(" ").trim();
    if (!name) problems.push(`${selector(el)} (${el.tagName.toLowerCase()} ${el.name || ""}) has no accessible name`);
    if (el.type === "radio") {
      const legend = el.closest("fieldset") && el.closest("fieldset").querySelector("legend");
      if (!legend || !legend.textContent.trim()) {
        problems.push(`${selector(el)}: a radio button outside a fieldset with a legend`);
      }
    }
  }
  return {controls, problems};
}"""

FOCUS_JS = "() => {" + HELPERS + r"""
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  const outline = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) > 0;
  const shadow = !!s.boxShadow && s.boxShadow !== "none";
  const around = background(el.parentElement || el);
  const colours = (outline ? [s.outlineColor] : []).concat(shadow ? (s.boxShadow.match(/rgba?\([^)]*\)/g) || []) : []);
  const best = Math.max(0, ...colours.map(parse).filter(Boolean).map(c => ratio(over(c, around), around)));
  return {selector: selector(el), tag: el.tagName.toLowerCase(), id: el.id,
          text: (el.innerText || el.value || "").trim().slice(0, 40), outline, shadow,
          ratio: Math.round(best * 100) / 100};
}"""

OVERFLOW_JS = "() => {" + HELPERS + r"""
  const width = window.innerWidth, scrollWidth = document.documentElement.scrollWidth;
  const scrolls = (e) => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
    if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(p).overflowX)) return true; } return false; };
  const wide = (e) => e.getBoundingClientRect().right > width + 0.5;
  const culprits = scrollWidth <= width ? [] : [...document.querySelectorAll("body *")]
    .filter(e => wide(e) && !scrolls(e)
                 && !(e.parentElement && wide(e.parentElement) && e.parentElement !== document.body))
    .map(e => `${selector(e)} (right edge at ${Math.round(e.getBoundingClientRect().right)} px)`);
  return {width, scrollWidth, culprits: culprits.slice(0, 12)};
}"""


@pytest.fixture(scope="module")
def console_pages(service, keys, tables) -> dict[str, str]:
    """Every console page as a path. The admin holds one case of a new account (so its page shows the resolve
    form) and resolved another as valid/high (so the account page shows a violation with the appeal and remedial
    forms, and the case page the subject's record)."""
    admin, tag, now = client(keys["admin"]), uuid.uuid4().hex[:6], datetime.now(UTC)
    account = f"a-access-{tag}"
    record = {"account_id": account, "created_at": (now - timedelta(days=90)).isoformat(), "role": "seller",
              "verified": True}
    res = admin.post(f"{service}/events", json={"accounts": [record]})
    assert res.status_code == 200, res.text
    reports = tables["reports"]
    rows = as_request(reports[reports["reporter_id"].notna() & reports["order_id"].isna()].tail(2))
    cases = []
    for i, r in enumerate(rows):
        r.update(report_id=f"access-{tag}-{i}", subject_id=account,
                 created_at=(now - timedelta(minutes=9 - i)).isoformat())
        res = admin.post(f"{service}/reports", json={"reports": [r]})
        assert res.status_code == 200 and res.json()["accepted"] == [r["report_id"]], res.text
        cases.append(f"case-{r['report_id']}")
    resolved, held = cases
    for case_id in cases:
        res = admin.post(f"{service}/queue/claim", json={"case_id": case_id})
        assert res.status_code == 200 and res.json()["case"]["case_id"] == case_id, res.text
    res = admin.post(f"{service}/cases/{resolved}/resolve", json={"valid": True, "severity": "high"})
    assert res.status_code == 200, res.text
    return {"sign-in": "/console/sign-in?notice=signed-out", "queue": "/console/queue",
            "case": f"/console/cases/{quote(held)}",
            "alerts": "/console/alerts", "account": f"/console/accounts/{quote(account)}",
            "models": "/console/models", "error": "/console/cases/no-such-case"}


@pytest.fixture(scope="module")
def admin_state(browser, service, keys) -> dict:
    """An admin's signed-in session (cookies), for the module's page checks: the admin sees every form."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{service}/console/sign-in")
    page.get_by_label("API key").fill(keys["admin"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/console/queue"))
    state = context.storage_state()
    context.close()
    return state


@pytest.fixture
def admin_page(browser, admin_state) -> Iterator:
    """A page of a fresh context holding the admin's session, closed with its context (as the `page` fixture)."""
    context = browser.new_context(storage_state=admin_state, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def open_page(page, service: str, console_pages: dict[str, str], name: str) -> None:
    res = page.goto(service + console_pages[name])
    assert res is not None and res.status == (404 if name == "error" else 200), (name, res and res.status)
    if name == "case":
        expect(page.get_by_role("button", name="Resolve case")).to_be_visible()
    if name == "account":
        expect(page.get_by_role("button", name="Record appeal").first).to_be_visible()


def tab_stops(page, until=None) -> list[dict]:
    """Press Tab from the top of the page and describe each focused element (until one matches `until`)."""
    page.evaluate("""() => {  // move the sequential focus starting point to the top of the page
        document.body.tabIndex = -1; document.body.focus(); document.body.removeAttribute("tabindex");
        window.scrollTo(0, 0); }""")
    stops: list[dict] = []
    for _ in range(MAX_TAB_STOPS):
        page.keyboard.press("Tab")
        stop = page.evaluate(FOCUS_JS)
        if stop is None or (stops and stop["selector"] == stops[0]["selector"]):
            break  # back at the start
        stops.append(stop)
        if until is not None and until(stop):
            break
    return stops


# -- keyboard ------------------------------------------------------------------------------------

def test_the_sign_in_form_is_reached_with_tab_and_sent_with_enter(page, service, keys):
    page.goto(f"{service}/console/sign-in")
    stops = tab_stops(page, until=lambda s: s["id"] == "key")
    assert stops and stops[-1]["id"] == "key", stops
    page.keyboard.type(keys["investigator"])
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/console/queue(\?.*)?$"))
    expect(page.locator("#queue")).to_be_visible()


@pytest.mark.parametrize("key", ["Enter", " "], ids=["enter", "space"])
def test_claim_next_and_the_filters_are_reached_with_tab_and_work_from_the_keyboard(admin_page, service, key):
    """The form goes with a spoiled CSRF token: the service refuses it (403) and changes nothing, so the session's
    queue stays as the other tests expect it (test_console_flow claims for real)."""
    page = admin_page
    page.goto(f"{service}/console/queue")
    stops = tab_stops(page, until=lambda s: s["text"] == "Claim next")
    reached = [s["id"] or s["text"] for s in stops]
    assert reached[-1] == "Claim next", reached
    assert {"family", "category", "Filter"} <= set(reached), reached
    page.locator('form[action="/console/claim"] input[name="csrf"]').evaluate("input => { input.value = 'spoiled'; }")
    with page.expect_navigation() as sent:  # to the answer's page, loaded (closing the page mid-way can hang)
        page.keyboard.press(key)
    assert sent.value is not None and sent.value.request.method == "POST" and sent.value.url.endswith("/console/claim")
    assert sent.value.status == 403, sent.value.status  # sent by the key press, and refused for its token alone
    expect(page.get_by_role("heading", name=re.compile("^403"))).to_be_visible()


def test_the_queue_filters_are_sent_from_the_keyboard(admin_page, service):
    page = admin_page
    page.goto(f"{service}/console/queue")
    page.get_by_label("Category").select_option("spam")
    stops = tab_stops(page, until=lambda s: s["text"] == "Filter")
    assert stops[-1]["text"] == "Filter", stops
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"category=spam"))
    expect(page.get_by_label("Category")).to_have_value("spam")


def test_every_focused_control_shows_a_visible_focus_indicator(admin_page, service, console_pages):
    page, missing = admin_page, []
    for name in PAGES:
        open_page(page, service, console_pages, name)
        stops = tab_stops(page)
        assert len(stops) >= 3, (name, stops)
        missing += [f"{name}: {s['selector']} (outline {s['outline']}, box-shadow {s['shadow']}, contrast "
                    f"{s['ratio']}:1)" for s in stops if not (s["outline"] or s["shadow"]) or s["ratio"] < 3]
    missing = list(dict.fromkeys(missing))  # a date input is one element over several tab stops
    assert not missing, "no visible focus indicator (or one under 3:1 against its background):\n" + "\n".join(missing)


# -- labels, contrast, narrow screens ----------------------------------------------------------------

@pytest.mark.parametrize("name", PAGES)
def test_every_control_has_an_accessible_name(admin_page, service, console_pages, name):
    open_page(admin_page, service, console_pages, name)
    found = admin_page.evaluate(LABELS_JS)
    assert found["controls"] >= 1 and not found["problems"], "\n".join(found["problems"])


@pytest.mark.parametrize("name", PAGES)
def test_text_contrast_meets_wcag_aa(admin_page, service, console_pages, name):
    open_page(admin_page, service, console_pages, name)
    found = admin_page.evaluate(CONTRAST_JS)
    lines = sorted({f"{f['selector']} '{f['text']}': {f['color']} on {f['background']} = {f['ratio']}:1 "
                    f"(needs {f['need']}:1)" for f in found["failing"]})
    assert found["checked"] > 5 and not lines, f"{len(lines)} texts under WCAG AA contrast:\n" + "\n".join(lines[:40])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", PAGES)
def test_no_horizontal_page_scroll(admin_page, service, console_pages, name, width):
    admin_page.set_viewport_size({"width": width, "height": 900})
    open_page(admin_page, service, console_pages, name)
    found = admin_page.evaluate(OVERFLOW_JS)
    assert found["scrollWidth"] <= found["width"], (
        f"{name} at {width} px is {found['scrollWidth']} px wide; too wide:\n" + "\n".join(found["culprits"]))
