"""An account's timeline over HTTP (GET /accounts/{id}/timeline) and on the console's case and account pages,
against the running service over the imported simulation: orders with their later facts at their own times,
reports about the account, and the ledger's violations and penalties."""
from __future__ import annotations

import re
from html import unescape

import pandas as pd
import pytest
from conftest import client

from test_console import session_of


def latest_orders(orders: pd.DataFrame, account: str, n: int = 20) -> pd.DataFrame:
    mine = orders[(orders["buyer_id"] == account) | (orders["seller_id"] == account)]
    return mine.sort_values(["created_at", "order_id"], ascending=[False, True]).head(n)


@pytest.fixture(scope="module")
def busy(tables) -> str:
    """An account with a violation on record whose latest 20 orders include a late shipment and a refund, so
    every kind of flag has something to show."""
    orders = tables["orders"]
    counts = pd.concat([orders["buyer_id"], orders["seller_id"]]).value_counts()
    for account in counts.index.intersection(pd.Index(tables["enforcements"]["account_id"].unique())):
        latest = latest_orders(orders, account)
        if (latest["shipped_at"] > latest["ship_by"]).any() and latest["refunded"].any():
            return account
    raise AssertionError("the simulation has no account with a violation, a late shipment and a refund")


def test_the_timeline_puts_orders_facts_reports_and_violations_on_one_time_axis(service, keys, tables, busy):
    res = client(keys["investigator"]).get(f"{service}/accounts/{busy}/timeline", params={"limit": 20})
    assert res.status_code == 200, res.text
    body = res.json()
    orders = tables["orders"]
    mine = orders[(orders["buyer_id"] == busy) | (orders["seller_id"] == busy)]
    assert body["counts"]["orders"] == len(mine)
    assert body["counts"]["reports"] >= (tables["reports"]["subject_id"] == busy).sum()
    assert body["counts"]["violations"] == (tables["enforcements"]["account_id"] == busy).sum()
    at = [pd.Timestamp(e["at"]) for e in body["entries"]]
    assert at == sorted(at, reverse=True)  # newest first
    # the latest 20 orders, each at its creation and each later fact at its own time, late shipments flagged
    latest = latest_orders(orders, busy)
    entries = [e for e in body["entries"] if e["kind"] == "order"]
    assert {e["ref"] for e in entries} == set(latest["order_id"])
    for o in latest.itertuples():
        facts = {e["what"]: e for e in entries if e["ref"] == o.order_id}
        if pd.notna(o.shipped_at):
            shipped = next(e for w, e in facts.items() if w.startswith("order shipped"))
            assert pd.Timestamp(shipped["at"]) == o.shipped_at
            assert (shipped["flag"] == "late") == (o.shipped_at > o.ship_by)
        assert any(w.startswith("order refunded") for w in facts) == bool(o.refunded)
    # every violation on record, with the penalty decided for it
    kinds = [(e["kind"], e["ref"]) for e in body["entries"]]
    for vid in tables["enforcements"].query("account_id == @busy")["violation_id"]:
        assert ("violation", vid) in kinds and ("penalty", vid) in kinds


def test_the_timeline_refuses_unknown_accounts_bad_limits_and_the_intake_role(service, keys, busy):
    inv = client(keys["investigator"])
    missing = inv.get(f"{service}/accounts/nobody-at-all/timeline")
    assert missing.status_code == 404 and "nobody-at-all" in missing.json()["error"]
    bad = inv.get(f"{service}/accounts/{busy}/timeline", params={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.text
    assert client(keys["intake"]).get(f"{service}/accounts/{busy}/timeline").status_code == 403


def test_the_case_and_account_pages_show_the_timeline(service, keys, tables, busy):
    api = client(keys["investigator"])
    timeline = api.get(f"{service}/accounts/{busy}/timeline").json()
    with session_of(service, keys["investigator"]) as b:
        page = b.get(f"/console/accounts/{busy}").text
        assert f'Timeline of <span class="id">{busy}</span>' in page
        rows = re.findall(r'<tr class="kind-(\w+)[^"]*">\s*<td class="when">[^<]*</td>\s*<td>\w+</td>\s*<td>(.*?)</td>'
                          r'\s*<td class="id">([^<]*)</td>', page, re.S)
        assert [(k, unescape(ref)) for k, _, ref in rows] == [(e["kind"], e["ref"]) for e in timeline["entries"]]
        assert any('class="tag tag-penalty"' in what for _, what, _ in rows)
        queued = api.get(f"{service}/queue", params={"limit": 1000}).json()
        case = next(c for c in queued if api.get(f"{service}/accounts/{c['subject_id']}/timeline").status_code == 200)
        case_page = b.get(f"/console/cases/{case['case_id']}").text
        assert f'Timeline of <span class="id">{case["subject_id"]}</span>' in case_page
