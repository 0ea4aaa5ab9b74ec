"""The marketplace's events in the store: ingest them exactly once, read them back as the contract's tables.

The store is the system of record for what the features read: accounts and their later changes, orders and
their later facts, outcomes (market_* tables), reports (intake_reports) and enforcements (the ledger's
violations). Every such row carries `seq`, taken in its writing transaction from the one-row event_counter;
the counter's row lock orders writers, so `seq` order is commit order and a reader that has seen everything
up to n misses nothing by asking for `seq > n` next (serving.market.live_feed tails the store that way).

Ingestion is idempotent by key: a record already stored with the same content is named in `already_known`
and stored nothing; one stored with other content is a conflict (HTTP 409) and the whole batch is refused, so
nothing is ever silently overwritten. A batch is one transaction: durable when the answer says so, or not at all.

A whole data set (features.io.load_tables) goes in through Market.import_tables (`docket import`): the same
tables and sequence, in chunks of one transaction each, skipping what is already stored. `resolvable` is what
`docket export` writes out of Market.tables(): the rows whose references resolve, so a training set loads.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    String,
    any_,
    bindparam,
    func,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY

from features import vocabulary as V
from features.contract import TABLES as CONTRACT
from features.validate import as_canonical, empty_table
from policy.penalty import Policy
from serving.enforcement.ledger import (
    enforcement_rows,
    enforcements_query,
    record_enforcements,
)
from serving.input_checks import FieldError
from serving.market.events import FACT_FLAGS, ORDER_FACTS, Batch
from serving.store import tables as T
from serving.store.columns import SNAPSHOT, export_snapshot, read_frame
from serving.store.conflicts import ConflictError
from serving.store.db import (
    COPY_MIN_ROWS,
    append_audit,
    insert_rows,
    next_seq,
    reading,
    writing,
)

CHUNK = 500  # keys per IN (...) lookup
IMPORT_CHUNK = 50_000  # rows per transaction (and per insert_rows call) in a bulk import
IMPORT_LOOKUP = 5_000  # keys per IN (...) lookup in a bulk import
KEY_LOOKUP = 20_000  # keys per lookup in missing_keys (SQLite allows 32,766 bound values)
ENFORCEMENT_PART = min(COPY_MIN_ROWS - 1, 500)  # enforcements per record_enforcements call (see _record_in_parts)


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


# The contract's tables in the order an import stores them (reports last: their queueing reads the rest).
IMPORT_ORDER = ("accounts", "orders", "outcomes", "enforcements", "reports")


@dataclass
class _Target:
    """A store table a bulk import writes: its key, and whether it still holds only what this import stored."""
    label: str
    table: Any
    key: tuple[str, ...]
    store: Callable[..., None] | None = None  # (conn, target, rows, seqs); default: insert with seq and received_*
    fresh: bool = True
    last: int | None = None  # the last number this import stored in it


# Where each kind of row of a data set is stored, and its key there.
IMPORT_TARGETS: dict[str, Callable[[], _Target]] = {
    "accounts": lambda: _Target("accounts", T.market_accounts, ("account_id",)),
    "orders": lambda: _Target("orders", T.market_orders, ("order_id",)),
    "order_updates": lambda: _Target("order_updates", T.market_order_updates, ("order_id", "fact")),
    "outcomes": lambda: _Target("outcomes", T.market_outcomes, ("report_id",)),
    "enforcements": lambda: _Target("enforcements", T.violations, ("violation_id",)),
    "reports": lambda: _Target("reports", T.intake_reports, ("report_id",)),
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
            _record_in_parts(conn, enforcements, range(cursor, cursor + len(enforcements)), actor=actor,
                             policy=self.policy, roles=self._roles(conn, enforcements, batch))
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
            from serving.input_checks import RequestError
            raise RequestError(unknown)
        return {i: roles[i] for i in ids}

    # -- bulk import --------------------------------------------------------------------------

    def import_tables(self, tables: Mapping[str, pd.DataFrame], *, actor: str, now: datetime, triage: Any,
                      history_factory: Callable[[], Any], on_step: Callable[[str], None] | None = None) -> dict:
        """Bulk-load a validated data set (what features.io.load_tables returns) into the tables Market.ingest
        writes, with the same sequence numbers, so the features read it back exactly (Market.tables).

        accounts -> market_accounts; orders -> market_orders, each fact time set one market_order_updates row;
        outcomes -> market_outcomes; enforcements -> the ledger (serving.enforcement.ledger.record_enforcements, each
        account's role from the accounts table); reports with an outcome -> intake_reports rows without a case
        (resolved long ago); reports without one -> `triage.intake` in batches of `triage.max_batch`, after
        the accounts, orders, outcomes and enforcements are stored (and before the resolved reports, which
        spike detection would otherwise take in), with `history_factory()` built then and no scorer: the
        rules-only priority, each in an open case (the running service rescores them with the models).

        Idempotent: a row whose key is already stored is skipped and counted (its content is not compared);
        while a table holds only what this import stored, no lookups are made. Rows go in chunks of
        IMPORT_CHUNK, each chunk one transaction taking its numbers from the counter, so memory stays bounded
        and an interrupted import keeps whole chunks (the next run stores the rest). One audit event
        ("events.imported") per table that stored anything, in the transaction of its last chunk.
        `on_step(name)` is called after each table. Returns {table: {"stored", "already_there"}}, reports
        with "queued" too (stored through intake, in an open case)."""
        step = on_step or (lambda _name: None)
        frames = {name: tables[name] if name in tables else empty_table(name) for name in IMPORT_ORDER}
        counts: dict[str, dict[str, int]] = {}

        def rows_of(frame: pd.DataFrame, columns: Iterable[str]) -> list[dict]:
            return _row_dicts(frame, list(columns))

        accounts = IMPORT_TARGETS["accounts"]()
        counts |= self._import_chunks("accounts", frames["accounts"], [accounts], actor=actor, now=now,
                                      build=lambda f: {"accounts": rows_of(f, CONTRACT["accounts"].column_names)})
        step("accounts")

        orders, facts = IMPORT_TARGETS["orders"](), IMPORT_TARGETS["order_updates"]()
        counts |= self._import_chunks("orders", frames["orders"], [orders, facts], actor=actor, now=now,
                                      build=lambda f: {"orders": rows_of(f, KINDS["orders"].key + KINDS["orders"].fields),
                                                       "order_updates": _fact_rows(f)})
        step("orders")

        outcomes = IMPORT_TARGETS["outcomes"]()
        counts |= self._import_chunks("outcomes", frames["outcomes"], [outcomes], actor=actor, now=now,
                                      build=lambda f: {"outcomes": rows_of(f, CONTRACT["outcomes"].column_names)})
        step("outcomes")

        enforcements = frames["enforcements"].sort_values(["account_id", "decided_at", "violation_id"],
                                                          kind="stable").reset_index(drop=True)
        roles = self._import_roles(frames["accounts"], enforcements)

        def record(conn: Connection, target: _Target, rows: list[dict], seqs: range) -> None:
            _record_in_parts(conn, rows, seqs, actor=actor, policy=self.policy, roles=roles)

        violations = IMPORT_TARGETS["enforcements"]()
        violations.store = record
        counts |= self._import_chunks(
            "enforcements", enforcements, [violations], actor=actor, now=now,
            build=lambda f: {"enforcements": rows_of(f, CONTRACT["enforcements"].column_names)},
            bounds=_bounds_by(enforcements["account_id"]))  # an account's record in one transaction
        step("enforcements")

        # Unresolved reports go through intake before the resolved ones are stored: spike detection at intake
        # reads the stored reports about each subject, and a resolved report stored here has no score or case
        # for an alert to take in. The rules-only priority reads the subjects' records (enforcements), stored.
        reports = frames["reports"]
        resolved = reports["report_id"].isin(frames["outcomes"]["report_id"]).to_numpy()
        resolved = resolved | self._stored_outcome(reports["report_id"], outcomes)
        intake = IMPORT_TARGETS["reports"]()
        pending = reports[~resolved].reset_index(drop=True)
        with reading(self.engine) as conn:
            if len(pending) and not self._still_fresh(conn, intake):
                stored = self._stored_keys(conn, intake, [(k,) for k in pending["report_id"]])
                pending = pending[~pending["report_id"].isin([k[0] for k in stored])].reset_index(drop=True)
        counts["reports"] = {"stored": 0, "already_there": int((~resolved).sum()) - len(pending), "queued": 0}
        if len(pending):
            history = history_factory()
            size = max(int(triage.max_batch), 1)
            for start in range(0, len(pending), size):
                result = triage.intake(_report_records(pending.iloc[start:start + size]), history, scorer=None,
                                       actor=actor, now=now)
                counts["reports"]["queued"] += len(result["accepted"])
                counts["reports"]["already_there"] += len(result["already_known"])
            if intake.fresh:  # still only what this import stored? then the resolved need no lookups either
                with reading(self.engine) as conn:
                    held, top = conn.execute(select(func.count(), func.max(T.intake_reports.c.seq))).one()
                intake.fresh, intake.last = held == counts["reports"]["queued"], top
        step("queue")

        done = self._import_chunks(
            "reports", reports[resolved].reset_index(drop=True), [intake], actor=actor, now=now,
            build=lambda f: {"reports": _report_rows(f)},
            audit={"queued": counts["reports"]["queued"]})["reports"]
        counts["reports"]["stored"] = done["stored"]
        counts["reports"]["already_there"] += done["already_there"]
        step("reports")
        self._analyze()
        return counts

    def _analyze(self) -> None:
        """Fresh planner statistics after a bulk load: without them PostgreSQL took the just-filled tables for
        empty and planned a refresh's `seq > n` lookups as scans of every row (37 ms instead of 1 at 40,000
        orders, and growing with the store)."""
        with self.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")

    def missing_keys(self, keys: Mapping[str, pd.DataFrame]) -> dict[str, int]:
        """How many of these keys the store does not hold, per contract table (a frame of its key column) and
        "order_updates" (order_id, fact): a quick "already imported?" that reads keys only, a few microseconds
        each. A table holding fewer rows than keys asked is answered by its count alone."""
        out = {}
        with reading(self.engine) as conn:
            for name, wanted in keys.items():
                target = IMPORT_TARGETS[name]()
                wanted = pd.MultiIndex.from_frame(wanted[list(target.key)].astype(object)).unique()
                held = conn.execute(select(func.count()).select_from(target.table)).scalar_one()
                if held < len(wanted):
                    out[name] = len(wanted) - held
                    continue
                cols = [target.table.c[k] for k in target.key]
                firsts = wanted.get_level_values(0).unique().tolist()
                found: list = []
                for lo in range(0, len(firsts), KEY_LOOKUP):
                    found += conn.execute(select(*cols).where(_among(conn, cols[0], firsts[lo:lo + KEY_LOOKUP]))).all()
                stored = pd.MultiIndex.from_tuples([tuple(r) for r in found], names=wanted.names) if found else []
                out[name] = int((~wanted.isin(stored)).sum())
        return out

    def _import_chunks(self, name: str, frame: pd.DataFrame, targets: list[_Target], *, actor: str,
                       now: datetime, build: Callable[[pd.DataFrame], dict[str, list[dict]]],
                       bounds: list[tuple[int, int]] | None = None, audit: dict | None = None) -> dict:
        """Store one table's rows chunk by chunk (each chunk one transaction: lock the counter, drop what is
        stored unless the target is fresh, take numbers, insert); returns the counts per target."""
        counts = {t.label: {"stored": 0, "already_there": 0} for t in targets}
        bounds = _bounds(len(frame)) if bounds is None else bounds
        first = last = None
        for i, (lo, hi) in enumerate(bounds):
            rows = build(frame.iloc[lo:hi])
            with writing(self.engine) as conn:
                next_seq(conn, 0)  # the counter's lock first: no other writer stores a row until this commits
                for t in targets:
                    if rows[t.label] and not self._still_fresh(conn, t):
                        stored = self._stored_keys(conn, t, [tuple(r[k] for k in t.key) for r in rows[t.label]])
                        fresh = [r for r in rows[t.label] if tuple(r[k] for k in t.key) not in stored]
                        counts[t.label]["already_there"] += len(rows[t.label]) - len(fresh)
                        rows[t.label] = fresh
                n = sum(len(rows[t.label]) for t in targets)
                if n:
                    seq = next_seq(conn, n)
                    first, last, cursor = first or seq, seq + n - 1, seq
                    for t in targets:
                        part = rows[t.label]
                        if not part:
                            continue
                        seqs = range(cursor, cursor + len(part))
                        if t.store is None:
                            for r, s in zip(part, seqs):
                                r.update(seq=s, received_at=now, received_by=actor)
                            insert_rows(conn, t.table, part)
                        else:
                            t.store(conn, t, part, seqs)
                        t.last, cursor = seqs[-1], cursor + len(part)
                        counts[t.label]["stored"] += len(part)
                if i == len(bounds) - 1 and first is not None:
                    append_audit(conn, at=now, actor=actor, action="events.imported", entity="events",
                                 entity_id=f"{name} seq {first}-{last}", before=None,
                                 after={"table": name, **counts, **(audit or {})}, why="bulk import of a data set")
        return counts

    @staticmethod
    def _still_fresh(conn: Connection, target: _Target) -> bool:
        """Whether the target holds only rows this import stored (then nothing needs looking up). Asked with the
        counter locked or in a read: every writer of these tables takes numbers, so none slips in between."""
        if target.fresh:
            seq = target.table.c.seq
            query = select(target.table.c[target.key[0]]) if target.last is None else \
                select(seq).where(seq > target.last)
            target.fresh = conn.execute(query.limit(1)).first() is None
        return target.fresh

    @staticmethod
    def _stored_keys(conn: Connection, target: _Target, keys: list[tuple]) -> set[tuple]:
        """Which of these keys the target holds (looked up by the first key column)."""
        first = sorted({k[0] for k in keys})
        cols = [target.table.c[k] for k in target.key]
        found: set[tuple] = set()
        for start in range(0, len(first), IMPORT_LOOKUP):
            query = select(*cols).where(_among(conn, cols[0], first[start:start + IMPORT_LOOKUP]))
            found.update(tuple(row) for row in conn.execute(query))
        return found & set(keys)

    def _import_roles(self, accounts: pd.DataFrame, enforcements: pd.DataFrame) -> dict[str, str]:
        """Each sanctioned account's role: from the data set's accounts, else from the store."""
        roles = dict(zip(accounts["account_id"], accounts["role"]))
        missing = sorted(set(enforcements["account_id"]) - set(roles))
        if missing:
            with reading(self.engine) as conn:
                for start in range(0, len(missing), IMPORT_LOOKUP):
                    m = T.market_accounts.c
                    roles.update(dict(conn.execute(select(m.account_id, m.role).where(
                        m.account_id.in_(missing[start:start + IMPORT_LOOKUP]))).all()))
        unknown = sorted(set(missing) - set(roles))
        if unknown:
            from serving.input_checks import RequestError
            raise RequestError([FieldError("enforcements.account_id", f"unknown account '{a}' (not in the "
                                           "accounts table nor in the store)") for a in unknown[:10]])
        return roles

    def _stored_outcome(self, report_ids: pd.Series, outcomes: _Target) -> np.ndarray:
        """Which reports have an outcome stored before this import (sent through the API, or an investigator's);
        none to look up while market_outcomes holds only what this import stored."""
        out = np.zeros(len(report_ids), dtype=bool)
        with reading(self.engine) as conn:
            if not len(report_ids) or self._still_fresh(conn, outcomes):
                return out
            stored = self._stored_keys(conn, outcomes, [(k,) for k in report_ids])
        return report_ids.isin([k[0] for k in stored]).to_numpy()

    # -- reading ------------------------------------------------------------------------------

    def last_seq(self) -> int:
        with reading(self.engine) as conn:
            return int(conn.execute(select(T.event_counter.c.value)).scalar_one())

    def is_empty(self) -> bool:
        with reading(self.engine) as conn:
            return conn.execute(select(T.market_accounts.c.account_id).limit(1)).first() is None

    def tables(self, since: int | None = None) -> tuple[int, dict[str, pd.DataFrame]]:
        """(last seq, the contract's tables as stored), in canonical dtypes (the store checked its rows when they
        came in, so they are not checked again); with `since`, only the rows added or changed after that seq,
        each in its current version (an order with all its facts). All of it is read from one committed
        state, so the seq and the rows agree."""
        with _snapshot(self.engine, bulk=since is None) as conn:
            last = int(conn.execute(select(T.event_counter.c.value)).scalar_one())
            changed = set(READERS) if since is None else _changed(conn, since)
            return last, {name: read(conn, since) if name in changed else empty_table(name)
                          for name, (read, _) in READERS.items()}


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
    from serving.input_checks import RequestError
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


def _record_in_parts(conn: Connection, rows: list[dict], seqs: range, *, actor: str, policy: Policy,
                     roles: Mapping[str, str]) -> None:
    """record_enforcements in parts of fewer than COPY_MIN_ROWS rows: insert_rows sends a larger batch through
    COPY on PostgreSQL, which cannot send the decisions' JSON columns (a batch of 1,000 enforcements failed),
    and record_enforcements's work grows with accounts x rows per call. Each account's enforcements go in
    decision order, so one split between two parts is decided as in one call: the second part reads the
    first's rows back (same transaction)."""
    rows = sorted(rows, key=lambda r: (r["account_id"], r["decided_at"], r["violation_id"]))
    for lo in range(0, len(rows), ENFORCEMENT_PART):
        part = rows[lo:lo + ENFORCEMENT_PART]
        record_enforcements(conn, part, seqs=seqs[lo:lo + len(part)], actor=actor, policy=policy,
                            accounts={a: roles[a] for a in sorted({r["account_id"] for r in part})})


# ---------------------------------------------------------------------------
# Bulk-import helpers.

def _among(conn: Connection, column, values: list[str]):
    """`column IN (values)`; on PostgreSQL `column = ANY(:values)`, one array parameter: psycopg takes a long
    time over a query text with thousands of placeholders."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam("among", value=list(values), type_=ARRAY(String)))
    return column.in_(values)


def _bounds(n: int, size: int = IMPORT_CHUNK) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def _bounds_by(groups: pd.Series, size: int = IMPORT_CHUNK) -> list[tuple[int, int]]:
    """Chunks of about `size` rows of a frame sorted by `groups`, never splitting a group."""
    values = groups.to_numpy()
    starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]]) if len(values) else np.array([], dtype=int)
    out, lo = [], 0
    for start in starts[1:]:
        if start - lo >= size:
            out.append((lo, int(start)))
            lo = int(start)
    if lo < len(values):
        out.append((lo, len(values)))
    return out


def _values(column: pd.Series) -> list:
    """A column as plain Python values for the driver: aware UTC datetimes, None where missing."""
    missing = column.isna().to_numpy()
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        values = column.dt.tz_convert("UTC").dt.to_pydatetime().to_numpy(dtype=object)
    else:
        values = column.to_numpy(dtype=object)
    if missing.any():
        values = values.copy()
        values[missing] = None
    return values.tolist()


def _row_dicts(frame: pd.DataFrame, columns: list[str], extra: Mapping[str, Any] | None = None) -> list[dict]:
    names = list(columns) + list(extra or {})
    values = [_values(frame[c]) for c in columns] + [[v] * len(frame) for v in (extra or {}).values()]
    return [dict(zip(names, row)) for row in zip(*values)]


def _fact_rows(orders: pd.DataFrame) -> list[dict]:
    """One market_order_updates row per fact time an order has."""
    out: list[dict] = []
    for fact, column in ORDER_FACTS.items():
        has = orders[column].notna().to_numpy()
        if has.any():
            out += _row_dicts(orders.loc[has, ["order_id", column]].rename(columns={column: "at"}),
                              ["order_id", "at"], {"fact": fact})
    return out


def _report_rows(reports: pd.DataFrame) -> list[dict]:
    """intake_reports rows of resolved reports (no evidence; received_* and seq come with the chunk)."""
    rows = _row_dicts(reports, list(CONTRACT["reports"].column_names), {"evidence": None})
    for r in rows:
        r["family"] = V.family_of(r["category"])
    return rows


def _report_records(reports: pd.DataFrame) -> list[dict]:
    """Rows of the reports table as the JSON intake takes (ISO timestamps, null where missing)."""
    return [{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()}
            for r in _row_dicts(reports, list(CONTRACT["reports"].column_names))]


# ---------------------------------------------------------------------------
# Exporting: a training set must resolve every reference.

def resolvable(tables: Mapping[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], list[tuple[str, int, str]]]:
    """The tables without the rows a data set may not hold (references that do not resolve, and the linked
    times features.validate checks: a report filed before its order, an outcome before its report), and what
    was left out: (table, rows, why). Rows left out of one table can leave out others (an outcome of a report
    left out). What the store received through the API is checked field by field, not across tables, so this
    is where an order naming an account never sent, or an outcome of a report never sent, stops."""
    out = {name: frame for name, frame in tables.items()}
    dropped: list[tuple[str, int, str]] = []

    def drop(name: str, bad: pd.Series | np.ndarray, why: str) -> None:
        bad = np.asarray(bad, dtype=bool)
        if bad.any():
            dropped.append((name, int(bad.sum()), why))
            out[name] = out[name][~bad].reset_index(drop=True)

    def created(table: str, key: str, ids: pd.Series) -> pd.Series:
        """The created_at of the row each id names in `table` (NaT where none)."""
        at = pd.Index(out[table][key]).get_indexer(ids)
        return pd.Series(out[table]["created_at"].array.take(at, allow_fill=True), index=ids.index)

    accounts = out["accounts"]["account_id"]
    for column in ("buyer_id", "seller_id"):
        drop("orders", ~out["orders"][column].isin(accounts), f"{column} names an account never sent")
    drop("enforcements", ~out["enforcements"]["account_id"].isin(accounts), "account_id names an account never sent")
    drop("reports", ~out["reports"]["subject_id"].isin(accounts), "subject_id names an account never sent")
    reporter = out["reports"]["reporter_id"]
    drop("reports", reporter.notna() & ~reporter.isin(accounts), "reporter_id names an account never sent")
    placed = created("orders", "order_id", out["reports"]["order_id"])
    drop("reports", out["reports"]["order_id"].notna() & placed.isna(),
         "order_id names an order never sent (or left out)")
    placed = created("orders", "order_id", out["reports"]["order_id"])
    drop("reports", (placed > out["reports"]["created_at"]).fillna(False), "filed before its order was placed")
    filed = created("reports", "report_id", out["outcomes"]["report_id"])
    drop("outcomes", filed.isna(), "report_id names a report never sent (or left out)")
    filed = created("reports", "report_id", out["outcomes"]["report_id"])
    drop("outcomes", (filed > out["outcomes"]["resolved_at"]).fillna(False), "resolved before its report was filed")
    return out, dropped


# ---------------------------------------------------------------------------
# Reading the contract's tables back.

@contextmanager
def _snapshot(engine: Engine, bulk: bool = False) -> Iterator[Connection]:
    """One read transaction whose queries all see the same committed state. SQLite's read transaction does;
    PostgreSQL's default (READ COMMITTED) lets each query see what committed before it, so the counter read
    first could lag the rows, or accounts read first miss the accounts of orders read next: REPEATABLE READ."""
    if engine.dialect.name != "postgresql":
        with reading(engine) as conn:
            yield conn
        return
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            if bulk:  # reads of whole tables go through their own connection (serving.store.columns)
                export_snapshot(conn)
            try:
                yield conn
            finally:
                conn.info.pop(SNAPSHOT, None)


def _since(column, since: int | None):
    return column > since if since is not None else True


def _kinds(name: str, columns: Iterable[str]) -> dict[str, str]:
    """These columns of a contract table with their kinds, for serving.store.columns.read_frame."""
    kind = {c.name: c.kind for c in CONTRACT[name].columns}
    return {c: kind[c] for c in columns}


def _changed_keys(conn: Connection, keys: Select) -> Callable[[Any], Any]:
    """`column IN keys` for any column holding those keys, the keys (a few rows changed since a refresh's last
    look) read once and sent as values: a planner handed the subquery may hash-join it against a whole table
    (seen on PostgreSQL: a seq scan of every order for a refresh of one). Many keys (a long catch-up) stay a
    subquery, under the bind limit."""
    found = [k for (k,) in conn.execute(keys.limit(KEY_LOOKUP + 1))]
    if len(found) > KEY_LOOKUP:
        return lambda column: column.in_(keys)
    return lambda column: _among(conn, column, found)


def _accounts(conn: Connection, since: int | None) -> pd.DataFrame:
    a, u = T.market_accounts.c, T.market_account_updates.c
    query = select(a.account_id, a.created_at, a.role, a.verified)
    if since is not None:
        changed = _changed_keys(conn, select(a.account_id).where(a.seq > since)
                                .union(select(u.account_id).where(u.seq > since)))
        query = query.where(changed(a.account_id))
    frame = read_frame(conn, query.order_by(a.seq), _kinds("accounts", ["account_id", "created_at", "role", "verified"]),
                       bulk=since is None)
    updates = select(u.account_id, u.field, u.value).order_by(u.at, u.seq)
    if since is not None:
        updates = updates.where(changed(u.account_id))
    updates = read_frame(conn, updates, {"account_id": "str", "field": "str", "value": "str"}, bulk=since is None)
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
    return as_canonical("accounts", frame)


def _orders(conn: Connection, since: int | None) -> pd.DataFrame:
    o, u = T.market_orders.c, T.market_order_updates.c
    cols = ["order_id", "buyer_id", "seller_id", "show_id", "amount", "created_at", "ship_by"]
    query = select(*[o[c] for c in cols])
    if since is not None:
        # Two index lookups (a union, not an OR, which would scan every order).
        changed = _changed_keys(conn, select(o.order_id).where(o.seq > since)
                                .union(select(u.order_id).where(u.seq > since)))
        query = query.where(changed(o.order_id))
    frame = read_frame(conn, query.order_by(o.seq), _kinds("orders", cols), bulk=since is None)
    facts = select(u.order_id, u.fact, u.at)
    if since is not None:
        facts = facts.where(changed(u.order_id))
    facts = read_frame(conn, facts, {"order_id": "str", "fact": "str", "at": "timestamp"}, bulk=since is None)
    # Each fact's time into its column, by the fact's row among the orders (found once for every fact: mapping
    # ids per fact cost 5 s at two million orders).
    row = pd.Index(frame["order_id"]).get_indexer(facts["order_id"])
    at = facts["at"].dt.tz_convert(None).to_numpy()
    for fact, column in ORDER_FACTS.items():
        these = (facts["fact"] == fact).to_numpy() & (row >= 0)
        values = np.full(len(frame), np.datetime64("NaT"), dtype=at.dtype)
        values[row[these]] = at[these]
        frame[column] = pd.Series(values).dt.tz_localize("UTC")
        if fact in FACT_FLAGS:
            frame[FACT_FLAGS[fact]] = frame[column].notna()
    return as_canonical("orders", frame)


def _reports(conn: Connection, since: int | None) -> pd.DataFrame:
    r = T.intake_reports.c
    cols = list(CONTRACT["reports"].column_names)
    query = select(*[r[c] for c in cols]).where(_since(r.seq, since)).order_by(r.seq, r.report_id)
    return as_canonical("reports", read_frame(conn, query, _kinds("reports", cols), bulk=since is None))


def _enforcements(conn: Connection, since: int | None) -> pd.DataFrame:
    cols = list(CONTRACT["enforcements"].column_names)
    return as_canonical("enforcements", read_frame(conn, enforcements_query(since=since), _kinds("enforcements", cols),
                                                   bulk=since is None))


def _outcomes(conn: Connection, since: int | None) -> pd.DataFrame:
    m = T.market_outcomes.c
    cols = list(CONTRACT["outcomes"].column_names)
    return as_canonical("outcomes", read_frame(conn, select(*[m[c] for c in cols]).where(_since(m.seq, since))
                                               .order_by(m.seq), _kinds("outcomes", cols), bulk=since is None))


# Each contract table: how it is read, and the store tables whose rows it is made of.
READERS: dict[str, tuple[Callable[[Connection, int | None], pd.DataFrame], tuple[Any, ...]]] = {
    "accounts": (_accounts, (T.market_accounts, T.market_account_updates)),
    "orders": (_orders, (T.market_orders, T.market_order_updates)),
    "reports": (_reports, (T.intake_reports,)),
    "enforcements": (_enforcements, (T.violations,)),
    "outcomes": (_outcomes, (T.market_outcomes,)),
}


def _changed(conn: Connection, since: int) -> set[str]:
    """The contract tables with rows written after `since`: one round trip of index lookups (the last seq of
    each store table), so a refresh reads only what moved; most refreshes see one kind of event."""
    stores = sorted({t for _, sources in READERS.values() for t in sources}, key=lambda t: t.name)
    last = conn.execute(select(*[select(func.max(t.c.seq)).scalar_subquery() for t in stores])).one()
    moved = {t.name for t, n in zip(stores, last) if n is not None and n > since}
    return {name for name, (_, sources) in READERS.items() if any(t.name in moved for t in sources)}
