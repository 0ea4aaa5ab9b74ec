"""An account's timeline: what the marketplace and the ledger know about it, on one time axis, newest first.

An investigator judges a report against the account's past: was the parcel late before, were there refunds or
chargebacks, has it been warned already. Everything comes from the store (the system of record), each fact at
its own time: the account's creation and later changes, reports about it, the orders it bought or sold and
each order's later facts (shipped, delivered, cancelled, refunded, fraud known), and the ledger's violations
with every decision's penalties and any appeal or remedial step.

Bounded, since a busy seller has years of orders: the latest `limit` reports and the latest `limit` orders (with
all their facts) are read, through the subject and buyer/seller indexes, and the counts say how many there are
in all. Violations are few by construction and all shown.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from serving.enforcement.ledger import Ledger, NotFoundError
from serving.store import tables as T
from serving.store.db import reading

LIMIT = 50


def account_timeline(engine, ledger: Ledger, account_id: str, now: datetime, limit: int = LIMIT) -> dict:
    """{account_id, entries (newest first), counts (all reports and orders, not only those shown), limit}."""
    with reading(engine) as conn:
        account = conn.execute(select(T.market_accounts).where(T.market_accounts.c.account_id == account_id)
                               ).mappings().first()
        changes = conn.execute(select(T.market_account_updates)
                               .where(T.market_account_updates.c.account_id == account_id)).mappings().all()
        r = T.intake_reports.c
        reports = conn.execute(select(r.report_id, r.created_at, r.category, r.reporter_type, r.channel,
                                      T.market_outcomes.c.valid, T.market_outcomes.c.severity,
                                      T.market_outcomes.c.resolved_at)
                               .outerjoin(T.market_outcomes, T.market_outcomes.c.report_id == r.report_id)
                               .where(r.subject_id == account_id)
                               .order_by(r.created_at.desc(), r.report_id).limit(limit)).mappings().all()
        n_reports = conn.execute(select(func.count()).where(r.subject_id == account_id)).scalar_one()
        o = T.market_orders.c
        mine = or_(o.buyer_id == account_id, o.seller_id == account_id)
        orders = conn.execute(select(o.order_id, o.buyer_id, o.seller_id, o.amount, o.created_at, o.ship_by)
                              .where(mine).order_by(o.created_at.desc(), o.order_id).limit(limit)).mappings().all()
        n_orders = conn.execute(select(func.count()).where(mine)).scalar_one()
        u = T.market_order_updates.c
        facts = conn.execute(select(u.order_id, u.fact, u.at)
                             .where(u.order_id.in_([x["order_id"] for x in orders]))).mappings().all() if orders else []
    try:
        violations = ledger.health(account_id, now)["history"]
    except NotFoundError:
        violations = []
    if account is None and not (reports or orders or violations):
        raise NotFoundError(f"no account {account_id!r} in the marketplace's accounts, reports, orders or ledger")
    entries = (_account_entries(account, changes) + [_report_entry(x) for x in reports]
               + _order_entries(account_id, orders, facts) + _ledger_entries(violations))
    entries.sort(key=lambda e: (e["at"], e["kind"], e["ref"]), reverse=True)
    return {"account_id": account_id, "entries": [{**e, "at": e["at"].isoformat()} for e in entries],
            "counts": {"reports": n_reports, "orders": n_orders, "violations": len(violations)}, "limit": limit}


def _entry(at: datetime, kind: str, ref: str, what: str, flag: str | None = None) -> dict[str, Any]:
    """One line of the timeline; `flag` marks what an investigator should not miss (late, refunded, fraud...)."""
    return {"at": at, "kind": kind, "ref": ref, "what": what, "flag": flag}


def _account_entries(account, changes) -> list[dict]:
    if account is None:
        return []
    verified = "verified" if account["verified"] else "not verified"
    out = [_entry(account["created_at"], "account", account["account_id"],
                  f"account created as a {account['role']}, {verified}")]
    for c in changes:
        what = ("verified" if c["value"] == "true" else "verification withdrawn") \
            if c["field"] == "verified" else f"role changed to {c['value']}"
        out.append(_entry(c["at"], "account", c["account_id"], what))
    return out


def _report_entry(r) -> dict:
    what = f"reported for {r['category']} by a {r['reporter_type']} ({r['channel']})"
    if r["resolved_at"] is not None:
        what += f"; found {'valid, ' + (r['severity'] or 'no severity') if r['valid'] else 'not valid'}"
    return _entry(r["created_at"], "report", r["report_id"], what, "valid" if r["valid"] else None)


FACT_WORDS = {"shipped": "shipped", "delivered": "delivered", "cancelled": "cancelled", "refunded": "refunded",
              "fraud": "found fraudulent (chargeback or confirmed fraud)"}
FACT_FLAGS = {"cancelled": "cancelled", "refunded": "refunded", "fraud": "fraud"}


def _order_entries(account_id: str, orders, facts) -> list[dict]:
    by_id = {o["order_id"]: o for o in orders}
    out = []
    for o in orders:
        sold = o["seller_id"] == account_id
        other = o["buyer_id"] if sold else o["seller_id"]
        out.append(_entry(o["created_at"], "order", o["order_id"],
                          f"{'sold to' if sold else 'bought from'} {other}, amount {o['amount']:.2f}"
                          + (f"; to ship by {o['ship_by']:%Y-%m-%d %H:%M}" if o["ship_by"] is not None else "")))
    for f in facts:
        order = by_id[f["order_id"]]
        late = f["fact"] == "shipped" and order["ship_by"] is not None and f["at"] > order["ship_by"]
        what = f"order {FACT_WORDS.get(f['fact'], f['fact'])}" + (" late" if late else "")
        out.append(_entry(f["at"], "order", f["order_id"], what, "late" if late else FACT_FLAGS.get(f["fact"])))
    return out


def _ledger_entries(violations: list[dict]) -> list[dict]:
    out = []
    for v in violations:
        vid = v["violation_id"]
        out.append(_entry(datetime.fromisoformat(v["occurred_at"]), "violation", vid,
                          f"violation: {v['category']}, {v['severity']}", "violation"))
        for d in v["decisions"]:
            actions = ", ".join(a["type"] + (f" for {a['days']} days" if a.get("days") else "")
                                + (f" ({a['feature']})" if a.get("feature") else "") for a in d["actions"])
            out.append(_entry(datetime.fromisoformat(d["decided_at"]), "penalty", vid,
                              f"penalty: {actions or 'no action'} (rung {d['rung']}, {d['cause']})", "penalty"))
        for e in v["events"]:
            out.append(_entry(datetime.fromisoformat(e["at"]), e["kind"], vid, f"{e['kind']}: {e['value']}"))
    return out
