"""The marketplace's events in the store: ingest them exactly once, read them back as the contract's tables.

The store is the system of record for what the features read: accounts and their later changes, orders and
their later facts, outcomes (market_* tables), reports (intake_reports) and enforcements (the ledger's
violations). Every such row carries `seq`, taken in its writing transaction from the one-row event_counter;
the counter's row lock orders writers, so `seq` order is commit order and a reader that has seen everything
up to n misses nothing by asking for `seq > n` next (serving.live_feed tails the store that way).

Ingestion is idempotent by key: a record already stored with the same content is named in `already_known`
and stored nothing; one stored with other content is a conflict (HTTP 409) and the whole batch is refused, so
nothing is ever silently overwritten. A batch is one transaction: durable when the answer says so, or not at all.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select, tuple_

from features.contract import TABLES as CONTRACT
from features.validate import validate_table
from serving import tables as T
from serving.events import FACT_FLAGS, ORDER_FACTS, Batch
from serving.ledger import enforcement_rows, record_enforcements
from serving.penalty import Policy
from serving.requests import FieldError
from serving.store import append_audit, insert_rows, next_seq, reading, writing

CHUNK = 500  # keys per IN (...) lookup


class ConflictError(ValueError):
    """Known ids sent again with other content: nothing of the batch is stored (HTTP 409)."""

    def __init__(self, conflicts: list[FieldError]):
        self.conflicts = conflicts
        super().__init__("; ".join(f"{c.field}: {c.message}" for c in conflicts))

    def body(self) -> dict:
        return {"error": "conflict: already stored with other content", "detail": [c.as_dict() for c in self.conflicts]}


@dataclass(frozen=True)
class Kind:
    """How one kind of event is stored: its table, key columns and the columns a retry must repeat."""
    table: Any
    key: tuple[str, ...]
    fields: tuple[str, ...]


KINDS: dict[str, Kind] = {
    "accounts": Kind(T.market_accounts, ("account_id",), ("created_at", "role", "verified")),
    "account_updates": Kind(T.market_account_updates, ("account_id", "field", "at"), ("value",)),
    "orders": Kind(T.market_orders, ("order_id",), ("buyer_id", "seller_id", "show_id", "amount", "created_at",
                                                     "ship_by")),
    "order_updates": Kind(T.market_order_updates, ("order_id", "fact"), ("at",)),
    "outcomes": Kind(T.market_outcomes, ("report_id",), ("valid", "severity", "fraud_confirmed", "resolved_at")),
}


class Market:
    def __init__(self, engine: Engine, policy: Policy):
        self.engine, self.policy = engine, policy

    # -- writing ------------------------------------------------------------------------------

    def ingest(self, batch: Batch, *, actor: str, now: datetime) -> dict:
        """Store a checked batch in one transaction: {"stored": counts, "already_known": ids, "seq": last}."""
        rows = _store_rows(batch)
        with writing(self.engine) as conn:
            first = next_seq(conn, 0)  # lock the counter first: concurrent batches then see each other's rows
            known, conflicts = {}, []
            for kind, records in rows.items():
                fresh, seen, clashes = self._split_known(conn, kind, records)
                rows[kind], known[kind] = fresh, seen
                conflicts += clashes
            enforcements, seen, clashes = self._split_known_enforcements(conn, batch.rows.get("enforcements", []))
            known["enforcements"], conflicts = seen, conflicts + clashes
            if conflicts:
                raise ConflictError(conflicts)
            n = sum(len(r) for r in rows.values()) + len(enforcements)
            seq = next_seq(conn, n) if n else first - 1
            cursor = seq
            for kind, records in rows.items():
                for r in records:
                    r.update(seq=cursor, received_at=now, received_by=actor)
                    cursor += 1
                insert_rows(conn, KINDS[kind].table, records)
            record_enforcements(conn, enforcements, seqs=range(cursor, cursor + len(enforcements)), actor=actor,
                                policy=self.policy, accounts=self._roles(conn, enforcements, batch))
            stored = {k: len(v) for k, v in rows.items() if v}
            if enforcements:
                stored["enforcements"] = len(enforcements)
            if n:
                append_audit(conn, at=now, actor=actor, action="events.ingested", entity="events",
                             entity_id=f"seq {seq}-{seq + n - 1}", before=None, after=stored, why=None)
        return {"stored": stored, "already_known": {k: v for k, v in known.items() if v},
                "seq": seq + n - 1 if n else self.last_seq()}

    def _split_known(self, conn: Connection, kind: str, records: list[dict]) -> tuple[list[dict], list, list]:
        """(records to store, keys already stored alike, conflicts) for one kind."""
        spec = KINDS[kind]
        stored = _existing(conn, spec.table, spec.key, [tuple(r[k] for k in spec.key) for r in records])
        fresh, seen, conflicts = [], [], []
        for i, r in enumerate(records):
            key = tuple(r[k] for k in spec.key)
            old = stored.get(_norm_key(key))
            if old is None:
                fresh.append(r)
                continue
            differs = [f for f in spec.fields if not _same(old[f], r[f])]
            if differs:
                conflicts.append(FieldError(r["_where"], f"{_show(key)} is stored with other "
                                            f"{', '.join(differs)}"))
            else:
                seen.append(_show(key))
        for r in fresh:
            r.pop("_where", None)
        return fresh, seen, conflicts

    def _split_known_enforcements(self, conn: Connection, records: list[dict]) -> tuple[list[dict], list, list]:
        if not records:
            return [], [], []
        stored = {r["violation_id"]: r for r in enforcement_rows(conn, [r["violation_id"] for r in records])}
        fresh, seen, conflicts = [], [], []
        for i, r in enumerate(records):
            old = stored.get(r["violation_id"])
            if old is None:
                fresh.append(r)
                continue
            differs = [f for f in CONTRACT["enforcements"].column_names if not _same(old[f], r[f])]
            if differs:
                conflicts.append(FieldError(f"enforcements[{i}]", f"{r['violation_id']} is stored with other "
                                            f"{', '.join(differs)}"))
            else:
                seen.append(r["violation_id"])
        return fresh, seen, conflicts

    def _roles(self, conn: Connection, enforcements: list[dict], batch: Batch) -> dict[str, str]:
        """Each sanctioned account's role: from this batch or the store (an enforcement needs a known account)."""
        ids = sorted({r["account_id"] for r in enforcements})
        roles = {r["account_id"]: r["role"] for r in batch.rows.get("accounts", [])}
        missing = [i for i in ids if i not in roles]
        if missing:
            roles.update(dict(conn.execute(select(T.market_accounts.c.account_id, T.market_accounts.c.role)
                                           .where(T.market_accounts.c.account_id.in_(missing))).all()))
        unknown = [FieldError(f"enforcements[{i}].account_id", f"unknown account '{r['account_id']}' (send the "
                              "account first, or in the same batch)")
                   for i, r in enumerate(batch.rows.get("enforcements", [])) if r["account_id"] not in roles]
        if unknown:
            from serving.requests import RequestError
            raise RequestError(unknown)
        return {i: roles[i] for i in ids}

    # -- reading ------------------------------------------------------------------------------

    def last_seq(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(T.event_counter.c.value)).scalar_one())

    def is_empty(self) -> bool:
        with reading(self.engine) as conn:
            return conn.execute(select(T.market_accounts.c.account_id).limit(1)).first() is None

    def tables(self, since: int | None = None) -> tuple[int, dict[str, pd.DataFrame]]:
        """(last seq, the contract's tables as stored), validated into canonical dtypes; with `since`, only the
        rows added or changed after that seq, each in its current version (an order with all its facts)."""
        with reading(self.engine) as conn:
            last = int(conn.execute(select(T.event_counter.c.value)).scalar_one())
            return last, {
                "accounts": _accounts(conn, since), "orders": _orders(conn, since), "reports": _reports(conn, since),
                "enforcements": _enforcements(conn, since), "outcomes": _outcomes(conn, since),
            }


# ---------------------------------------------------------------------------
# Writing helpers.

def _store_rows(batch: Batch) -> dict[str, list[dict]]:
    """The batch's records as rows of the market tables (an order's inline facts become order updates)."""
    out: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for i, r in enumerate(batch.rows.get("accounts", [])):
        out["accounts"].append({**_plain(r), "_where": f"accounts[{i}]"})
    for i, r in enumerate(batch.rows.get("account_updates", [])):
        field = "role" if r["role"] is not None else "verified"
        value = r["role"] if field == "role" else ("true" if r["verified"] else "false")
        out["account_updates"].append({"account_id": r["account_id"], "field": field, "at": _dt(r["at"]),
                                       "value": value, "_where": f"account_updates[{i}]"})
    for i, r in enumerate(batch.rows.get("orders", [])):
        out["orders"].append({k: _dt(r[k]) for k in KINDS["orders"].key + KINDS["orders"].fields}
                             | {"_where": f"orders[{i}]"})
        for fact, column in ORDER_FACTS.items():
            if r.get(column) is not None:
                out["order_updates"].append({"order_id": r["order_id"], "fact": fact, "at": _dt(r[column]),
                                             "_where": f"orders[{i}].{column}"})
    for i, r in enumerate(batch.rows.get("order_updates", [])):
        out["order_updates"].append({**_plain(r), "_where": f"order_updates[{i}]"})
    for i, r in enumerate(batch.rows.get("outcomes", [])):
        out["outcomes"].append({**_plain(r), "_where": f"outcomes[{i}]"})
    _dedupe_facts(out["order_updates"])
    return {k: v for k, v in out.items() if v}


def _dedupe_facts(rows: list[dict]) -> None:
    """An inline fact and an order update for the same fact in one batch: the same fact twice is one row; two
    times for it is a request error."""
    from serving.requests import RequestError
    seen: dict[tuple, dict] = {}
    keep, errors = [], []
    for r in rows:
        key = (r["order_id"], r["fact"])
        if key in seen:
            if seen[key]["at"] != r["at"]:
                errors.append(FieldError(r["_where"], f"{r['fact']} of order {r['order_id']} "
                                         "is given twice with different times"))
            continue
        seen[key] = r
        keep.append(r)
    if errors:
        raise RequestError(errors)
    rows[:] = keep


def _plain(record: Mapping[str, Any]) -> dict:
    return {k: _dt(v) for k, v in record.items()}


def _dt(value: Any) -> Any:
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _existing(conn: Connection, table, key: tuple[str, ...], keys: list[tuple]) -> dict[tuple, dict]:
    """Stored rows by (normalised) key."""
    out: dict[tuple, dict] = {}
    cols = [table.c[k] for k in key]
    for start in range(0, len(keys), CHUNK):
        part = keys[start:start + CHUNK]
        where = cols[0].in_([k[0] for k in part]) if len(cols) == 1 else tuple_(*cols).in_(part)
        for row in conn.execute(select(table).where(where)).mappings():
            out[_norm_key(tuple(row[k] for k in key))] = dict(row)
    return out


def _norm_key(key: tuple) -> tuple:
    return tuple(v.isoformat() if isinstance(v, datetime) else v for v in key)


def _same(stored: Any, sent: Any) -> bool:
    if isinstance(stored, datetime) or isinstance(sent, datetime):
        return stored is not None and sent is not None and pd.Timestamp(stored) == pd.Timestamp(sent)
    if isinstance(stored, float) or isinstance(sent, float):
        return stored is not None and sent is not None and float(stored) == float(sent)
    return stored == sent


def _show(key: tuple) -> str:
    return "/".join(v.isoformat() if isinstance(v, datetime) else str(v) for v in key)


# ---------------------------------------------------------------------------
# Reading the contract's tables back.

def _since(column, since: int | None):
    return column > since if since is not None else True


def _frame(conn: Connection, query, columns: Iterable[str]) -> pd.DataFrame:
    return pd.DataFrame(conn.execute(query).all(), columns=list(columns))


def _validated(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    return validate_table(name, frame[list(CONTRACT[name].column_names)])


def _accounts(conn: Connection, since: int | None) -> pd.DataFrame:
    a, u = T.market_accounts.c, T.market_account_updates.c
    query = select(a.account_id, a.created_at, a.role, a.verified)
    if since is not None:
        changed = select(u.account_id).where(u.seq > since)
        query = query.where((a.seq > since) | a.account_id.in_(changed))
    frame = _frame(conn, query.order_by(a.seq), ["account_id", "created_at", "role", "verified"])
    updates = select(u.account_id, u.field, u.value).order_by(u.at, u.seq)
    if since is not None:
        updates = updates.where(u.account_id.in_(frame["account_id"].tolist()))
    updates = _frame(conn, updates, ["account_id", "field", "value"])
    if len(updates):
        latest = updates.groupby(["account_id", "field"], sort=False)["value"].last()
        for field in ("role", "verified"):
            if field in latest.index.get_level_values(1):
                values = latest.xs(field, level=1)
                mapped = frame["account_id"].map(values)
                has = mapped.notna().to_numpy()
                new = mapped[has] if field == "role" else (mapped[has] == "true")
                frame[field] = frame[field].astype(object)
                frame.loc[has, field] = new.to_numpy()
    return _validated("accounts", frame)


def _orders(conn: Connection, since: int | None) -> pd.DataFrame:
    o, u = T.market_orders.c, T.market_order_updates.c
    cols = ["order_id", "buyer_id", "seller_id", "show_id", "amount", "created_at", "ship_by"]
    query = select(*[o[c] for c in cols])
    if since is not None:
        query = query.where((o.seq > since) | o.order_id.in_(select(u.order_id).where(u.seq > since)))
    frame = _frame(conn, query.order_by(o.seq), cols)
    facts = _frame(conn, select(u.order_id, u.fact, u.at) if since is None else
                   select(u.order_id, u.fact, u.at).where(u.order_id.in_(frame["order_id"].tolist())),
                   ["order_id", "fact", "at"])
    at = {(o, f): t for o, f, t in facts.itertuples(index=False)}
    for fact, column in ORDER_FACTS.items():
        frame[column] = pd.Series([at.get((o, fact)) for o in frame["order_id"]], index=frame.index, dtype=object)
        if fact in FACT_FLAGS:
            frame[FACT_FLAGS[fact]] = frame[column].notna()
    return _validated("orders", frame)


def _reports(conn: Connection, since: int | None) -> pd.DataFrame:
    r = T.intake_reports.c
    cols = list(CONTRACT["reports"].column_names)
    query = select(*[r[c] for c in cols]).where(_since(r.seq, since)).order_by(r.seq, r.report_id)
    return _validated("reports", _frame(conn, query, cols))


def _enforcements(conn: Connection, since: int | None) -> pd.DataFrame:
    return _validated("enforcements", pd.DataFrame(enforcement_rows(conn, since=since),
                                                   columns=list(CONTRACT["enforcements"].column_names)))


def _outcomes(conn: Connection, since: int | None) -> pd.DataFrame:
    m = T.market_outcomes.c
    cols = list(CONTRACT["outcomes"].column_names)
    return _validated("outcomes", _frame(conn, select(*[m[c] for c in cols]).where(_since(m.seq, since))
                                          .order_by(m.seq), cols))

