"""The store as system of record for the marketplace's events (serving.market.event_store), on a real store: SQLite always,
PostgreSQL too when DOCKET_TEST_POSTGRES_URL is set (the `engine` fixture in tests/conftest.py)."""
from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import func, select

import serving.market.event_store as M
from features.validate import validate_table
from policy.file import load_policy
from policy.penalty import Account, Action, PastViolation, account_health
from serving.input_checks import RequestError
from serving.enforcement.ledger import Ledger
from serving.market.event_store import Market
from serving.market.timeline import account_timeline
from serving.store.conflicts import ConflictError
from serving.market.events import check_batch
from serving.store import tables as T
from serving.store.db import reading

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def account(account_id: str, role: str = "buyer", verified: bool = False, created: str = "2025-01-01T00:00:00Z") -> dict:
    return {"account_id": account_id, "created_at": created, "role": role, "verified": verified}


def order(order_id: str, buyer: str = "b1", seller: str = "s1", **facts) -> dict:
    return {"order_id": order_id, "buyer_id": buyer, "seller_id": seller, "show_id": None, "amount": 25.5,
            "created_at": "2025-02-01T10:00:00Z", "ship_by": "2025-02-04T10:00:00Z", **facts}


def enforcement(violation_id: str, account_id: str, action: str = "warning", days: int = 0) -> dict:
    return {"violation_id": violation_id, "account_id": account_id, "occurred_at": "2025-02-01T00:00:00Z",
            "decided_at": "2025-02-02T00:00:00Z", "family": "logistics", "category": "shipping_delay",
            "severity": "low", "action": action, "action_days": days}


FIRST = {
    "accounts": [account("b1"), account("s1", "seller", True)],
    "orders": [order("o1", shipped_at="2025-02-02T09:00:00Z")],
    "enforcements": [enforcement("v1", "s1")],
    "outcomes": [{"report_id": "r1", "valid": True, "severity": "low", "fraud_confirmed": False,
                  "resolved_at": "2025-03-01T00:00:00Z"}],
}


@pytest.fixture
def market(engine) -> Market:
    return Market(engine, load_policy())


def ingest(market: Market, body: dict, actor: str = "tests") -> dict:
    return market.ingest(check_batch(body, 100_000), actor=actor, now=NOW)


def audit(market: Market, action: str) -> list[dict]:
    with reading(market.engine) as conn:
        return [dict(r) for r in conn.execute(select(T.audit_events).where(T.audit_events.c.action == action)
                                              .order_by(T.audit_events.c.id)).mappings()]


def row_counts(market: Market) -> dict[str, int]:
    tables = (T.market_accounts, T.market_account_updates, T.market_orders, T.market_order_updates,
              T.market_outcomes, T.violations, T.decisions, T.intake_reports)
    with reading(market.engine) as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}


def test_a_batch_is_stored_once_and_a_retry_is_named_already_known(market):
    first = ingest(market, FIRST)
    assert first["stored"] == {"accounts": 2, "orders": 1, "order_updates": 1, "outcomes": 1, "enforcements": 1}
    assert first["already_known"] == {}
    assert first["seq"] == market.last_seq() == 6
    events = audit(market, "events.ingested")
    assert len(events) == 1 and events[0]["actor"] == "tests" and events[0]["after"] == first["stored"]
    assert events[0]["entity_id"] == "seq 1-6"
    counts = row_counts(market)

    again = ingest(market, FIRST)
    assert again["stored"] == {}
    assert again["already_known"] == {"accounts": ["b1", "s1"], "orders": ["o1"], "order_updates": ["o1/shipped"],
                                      "outcomes": ["r1"], "enforcements": ["v1"]}
    assert again["seq"] == 6 and market.last_seq() == 6
    assert row_counts(market) == counts
    assert len(audit(market, "events.ingested")) == 1  # nothing stored, nothing to audit


def test_a_known_key_with_other_content_is_a_conflict_and_nothing_of_the_batch_is_stored(market):
    ingest(market, FIRST)
    counts, seq = row_counts(market), market.last_seq()
    body = {"accounts": [account("n1"), account("b1", verified=True)],
            "orders": [order("o2")],
            "order_updates": [{"order_id": "o1", "fact": "shipped", "at": "2025-02-03T00:00:00Z"}]}
    with pytest.raises(ConflictError) as caught:
        ingest(market, body)
    fields = [c["field"] for c in caught.value.body()["detail"]]
    assert fields == ["accounts[1]", "order_updates[0]"]
    assert "verified" in str(caught.value) and "at" in str(caught.value)
    assert row_counts(market) == counts and market.last_seq() == seq
    assert "n1" not in set(market.tables()[1]["accounts"]["account_id"])


def test_an_orders_inline_facts_and_its_later_updates_are_one_order(market):
    ingest(market, FIRST)
    ingest(market, {"order_updates": [{"order_id": "o1", "fact": "delivered", "at": "2025-02-05T12:00:00Z"},
                                      {"order_id": "o1", "fact": "refunded", "at": "2025-02-06T12:00:00Z"}]})
    orders = market.tables()[1]["orders"]
    assert len(orders) == 1
    o1 = orders.iloc[0]
    assert o1["shipped_at"] == pd.Timestamp("2025-02-02T09:00:00Z")
    assert o1["delivered_at"] == pd.Timestamp("2025-02-05T12:00:00Z")
    assert o1["refunded"] and o1["refunded_at"] == pd.Timestamp("2025-02-06T12:00:00Z")
    assert not o1["cancelled"] and pd.isna(o1["cancelled_at"]) and not o1["fraud"]


def test_an_order_without_a_ship_by_is_stored_and_read_back_without_one(market):
    """A payment or a digital good promises no shipping (migration 0009 let the store hold it), and the account's
    timeline shows the order without a deadline and its shipping as never late."""
    ingest(market, FIRST)
    ingest(market, {"orders": [{k: v for k, v in order("pay1", amount=0.0).items() if k != "ship_by"}]})
    ingest(market, {"order_updates": [{"order_id": "pay1", "fact": "shipped", "at": "2025-03-01T00:00:00Z"}]})
    pay1 = market.tables()[1]["orders"].set_index("order_id").loc["pay1"]
    assert pd.isna(pay1["ship_by"]) and pay1["amount"] == 0.0
    assert pay1["shipped_at"] == pd.Timestamp("2025-03-01T00:00:00Z")
    entries = [e for e in account_timeline(market.engine, Ledger(market.engine, load_policy()), "b1", NOW)["entries"]
               if e["ref"] == "pay1"]
    assert sorted(e["what"] for e in entries) == ["bought from s1, amount 0.00", "order shipped"]
    assert all(e["flag"] is None for e in entries)  # no deadline: never late


def test_since_returns_only_rows_changed_after_it_each_in_its_current_version(market):
    ingest(market, FIRST)
    seq = ingest(market, {"orders": [order("o2")], "accounts": [account("b2")]})["seq"]
    later = ingest(market, {"order_updates": [{"order_id": "o1", "fact": "delivered", "at": "2025-02-05T00:00:00Z"}],
                            "account_updates": [{"account_id": "b1", "at": "2025-03-01T00:00:00Z",
                                                 "verified": True}]})
    last, changed = market.tables(since=seq)
    assert last == later["seq"] == seq + 2
    # o1 is old, but has a new fact: it comes back whole, with its inline fact too; o2 did not change.
    assert changed["orders"]["order_id"].tolist() == ["o1"]
    o1 = changed["orders"].iloc[0]
    assert o1["shipped_at"] == pd.Timestamp("2025-02-02T09:00:00Z")
    assert o1["delivered_at"] == pd.Timestamp("2025-02-05T00:00:00Z")
    assert changed["accounts"][["account_id", "verified"]].values.tolist() == [["b1", True]]
    assert all(len(changed[t]) == 0 for t in ("reports", "enforcements", "outcomes"))
    assert all(len(v) == 0 for v in market.tables(since=last)[1].values())
    # Everything since 0 is everything, in the same current versions.
    whole = market.tables()[1]
    for name, frame in market.tables(since=0)[1].items():
        pd.testing.assert_frame_equal(frame, whole[name])


def test_seq_strictly_increases_across_batches_and_over_every_kind(market):
    seqs = [ingest(market, FIRST)["seq"]]
    seqs.append(ingest(market, {"accounts": [account("b2")], "orders": [order("o2", buyer="b2")]})["seq"])
    seqs.append(ingest(market, {"order_updates": [{"order_id": "o2", "fact": "cancelled",
                                                   "at": "2025-02-01T11:00:00Z"}]})["seq"])
    seqs.append(ingest(market, {"enforcements": [enforcement("v2", "b2")]})["seq"])
    assert seqs == sorted(set(seqs)) and seqs[0] >= 1
    with reading(market.engine) as conn:
        stored = sorted(s for t in (T.market_accounts, T.market_orders, T.market_order_updates, T.market_outcomes,
                                    T.violations)
                        for s in conn.execute(select(t.c.seq)).scalars())
    assert stored == list(range(1, seqs[-1] + 1))  # one number per row, none twice, none skipped


def test_an_enforcement_for_an_unknown_account_is_a_request_error_naming_the_field(market):
    ingest(market, {"accounts": [account("b1")]})
    counts, seq = row_counts(market), market.last_seq()
    with pytest.raises(RequestError) as caught:
        ingest(market, {"accounts": [account("b2")], "enforcements": [enforcement("v1", "b2"),
                                                                      enforcement("v2", "ghost")]})
    assert [e.field for e in caught.value.errors] == ["enforcements[1].account_id"]
    assert "ghost" in caught.value.errors[0].message
    assert row_counts(market) == counts and market.last_seq() == seq  # b2 and v1 were not stored either


def test_an_enforcement_for_an_account_sent_earlier_or_in_the_same_batch_is_recorded(market):
    ingest(market, {"accounts": [account("b1")]})
    ingest(market, {"accounts": [account("s1", "seller")], "enforcements": [enforcement("v1", "b1"),
                                                                            enforcement("v2", "s1")]})
    enforcements = market.tables()[1]["enforcements"]
    assert enforcements["violation_id"].tolist() == ["v1", "v2"]


def test_tables_reads_one_committed_state(market, monkeypatch):
    """A batch committed while the tables are being read is in none of them, and not under the seq returned:
    the next read since that seq finds it whole."""
    ingest(market, FIRST)
    read_accounts, sources = M.READERS["accounts"]

    def accounts_then_a_commit(conn, since):
        frame = read_accounts(conn, since)
        Market(market.engine, market.policy).ingest(
            check_batch({"accounts": [account("b9")], "orders": [order("o9", buyer="b9")]}, 10),
            actor="tests", now=NOW)
        return frame

    monkeypatch.setitem(M.READERS, "accounts", (accounts_then_a_commit, sources))
    seq, tables = market.tables()
    monkeypatch.setitem(M.READERS, "accounts", (read_accounts, sources))
    assert seq == 6
    assert "o9" not in set(tables["orders"]["order_id"]) and "b9" not in set(tables["accounts"]["account_id"])
    later, changed = market.tables(since=seq)
    assert later == 8
    assert changed["orders"]["order_id"].tolist() == ["o9"] and changed["accounts"]["account_id"].tolist() == ["b9"]


def test_a_batch_of_a_thousand_enforcements_is_recorded_with_each_accounts_record_in_order(market):
    """A thousand rows and more go through COPY on PostgreSQL; the decisions' JSON columns must still get there."""
    accounts = [account(f"s{i}", "seller") for i in range(20)]
    rows = [{**enforcement(f"v{i:04d}", f"s{i % 20}"), "decided_at": f"2025-02-{2 + i // 60:02d}T00:00:00Z"}
            for i in range(1_200)]
    result = ingest(market, {"accounts": accounts, "enforcements": rows})
    assert result["stored"] == {"accounts": 20, "enforcements": 1_200}
    stored = market.tables()[1]["enforcements"]
    assert sorted(stored["violation_id"]) == [r["violation_id"] for r in rows]
    with reading(market.engine) as conn:
        health = dict(conn.execute(select(T.decisions.c.violation_id, T.decisions.c.account_health)).all())
    # Each account's 60 warnings are decided in order, whatever part of the batch they were stored in: the
    # health at each is the health of the record up to it.
    for i in (0, 20 * 29, 1_180):  # s0's first, middle and last
        record = [PastViolation(datetime(2025, 2, 1, tzinfo=UTC), "logistics", "shipping_delay", "low",
                                (Action("warning"),))] * (i // 20 + 1)
        when = pd.Timestamp(rows[i]["decided_at"]).to_pydatetime()
        assert health[f"v{i:04d}"] == account_health(when, Account("s0", "seller"), record, market.policy)
    assert health["v0000"] != health["v1180"]


def test_tables_read_back_are_what_validating_them_gives(market):
    """The store's rows are not checked again on the way out (features.validate.as_canonical only sets dtypes):
    what comes back must be exactly what a full contract check would make of it, missing values included."""
    ingest(market, FIRST)
    ingest(market, {"accounts": [account("b2")], "orders": [order("o2", buyer="b2", cancelled_at="2025-02-01T12:00:00Z")],
                    "enforcements": [enforcement("v2", "b2", action="suspension", days=7)]})
    for since in (None, 0):
        for name, frame in market.tables(since=since)[1].items():
            pd.testing.assert_frame_equal(frame, validate_table(name, frame), check_exact=True)
    enforcements = market.tables()[1]["enforcements"]
    assert enforcements[["violation_id", "action", "action_days"]].values.tolist() == \
        [["v1", "warning", 0], ["v2", "suspension", 7]]
