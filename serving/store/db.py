"""The storage edge: engines, migrations, transactions and the audit trail, for every persisted table.

The enforcement ledger and (later) the triage queue both go through here, so
SQLite and PostgreSQL look the same to them: foreign keys enforced, timestamps
aware UTC, and a write transaction that cannot interleave with another writer
where it matters (SQLite takes its write lock at BEGIN; on PostgreSQL callers
lock the row they serialise on). Nothing else in Docket opens a database.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    create_engine,
    event,
    insert,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from serving.store import tables as T

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE = "docket_write"  # execution option: this transaction will write
_MIGRATION_LOCK = 0x646F636B6574  # "docket": one migrating process at a time on PostgreSQL


class StoreError(RuntimeError):
    """A storage failure worth a clear message: a bad URL, an unreachable database, a failed migration."""


def make_engine(url: str, *, connect_args: Mapping[str, Any] | None = None, **engine_kwargs: Any) -> Engine:
    """An engine for a sqlite:/// or postgresql:// URL (PostgreSQL always through psycopg 3).

    `connect_args` go to the driver unchanged, e.g. {"options": "-csearch_path=x"} on PostgreSQL.
    """
    parsed = _driver_url(url)
    args = dict(connect_args or {})
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False, **args}, **engine_kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(parsed, connect_args=args, pool_pre_ping=True, **engine_kwargs)


def _driver_url(url: str) -> URL:
    """The URL with the driver Docket supports for its database; anything else is a StoreError."""
    try:
        parsed = make_url(url)
    except ArgumentError as err:
        raise StoreError(f"not a database URL: {url!r} (expected sqlite:///path or postgresql://...)") from err
    backend = parsed.drivername.split("+")[0]
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise StoreError(f"unsupported database {backend!r} in {parsed.render_as_string(hide_password=True)}: "
                     "Docket stores to sqlite:/// or postgresql://")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    """Foreign keys on, readers beside a writer (WAL), and wait for a lock instead of failing at once."""
    dbapi_conn.isolation_level = None  # SQLAlchemy's begin hook, not the driver, starts transactions
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for writers: a read-then-write cannot be overtaken by another writer in between."""
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return  # the caller asked for no transaction (e.g. VACUUM)
    conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if options.get(_WRITE) else 'DEFERRED'}")


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """One read-write transaction: committed when the block ends, rolled back if it raises."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def writer(engine: Engine) -> Iterator[Connection]:
    """One connection for several read-write transactions, each opened with `conn.begin()` by the caller.

    For a loop of small transactions (intake stores every report in its own): one pool
    checkout (and, on PostgreSQL, one liveness ping) for the loop instead of one per transaction.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        yield conn


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """One read-only transaction: every query in the block sees the same committed state (SQLite) or
    at least only committed state (PostgreSQL, read committed)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration; a no-op when it is there already, so call it at every start-up.

    Concurrent start-ups are safe: SQLite serialises the write transaction, and on
    PostgreSQL an advisory lock makes the second process wait and then find nothing to do.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    try:
        with writing(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as err:
        raise StoreError(f"cannot migrate {engine.url.render_as_string(hide_password=True)}: {err}") from err


def insert_if_absent(conn: Connection, table: Table, values: Mapping[str, Any]) -> None:
    """INSERT a row unless one with the same key exists (ON CONFLICT DO NOTHING), without aborting the transaction."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    conn.execute(dialect_insert(table).values(**values).on_conflict_do_nothing())


def to_json(value: Any) -> Any:
    """Plain JSON data: datetimes as ISO-8601 strings, tuples as lists, mappings with string keys."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def append_audit(conn: Connection, *, at: datetime, actor: str, action: str, entity: str, entity_id: str,
                 before: Any, after: Any, why: str | None) -> int:
    """Append one audit event in the caller's transaction, so it commits or rolls back with the change it records."""
    result = conn.execute(insert(T.audit_events).values(
        at=at, actor=actor, action=action, entity=entity, entity_id=entity_id,
        before=to_json(before), after=to_json(after), why=why,
    ))
    return int(result.inserted_primary_key[0])


def next_seq(conn: Connection, n: int) -> int:
    """Take n numbers of the store's event sequence in this transaction; returns the first (n = 0: the next one,
    taking none). The counter's row stays locked until the transaction ends, so writers take numbers in commit
    order: a reader that has seen every row up to n misses none by asking for more than n next."""
    c = T.event_counter.c
    last = conn.execute(update(T.event_counter).where(c.id == 1).values(value=c.value + n).returning(c.value))
    return int(last.scalar_one()) - n + 1


COPY_MIN_ROWS = 1_000  # below this, one executemany INSERT is as quick as COPY


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """INSERT many rows of plain values in the caller's transaction; on PostgreSQL a large batch goes through
    COPY (a bulk import of millions of rows would otherwise be bound by per-row statement round trips)."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or len(rows) < COPY_MIN_ROWS:
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    with conn.connection.driver_connection.cursor() as cursor:
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:  # JSON columns go as their text: COPY has no adapter for dicts and lists
                copy.write_row([json.dumps(to_json(v)) if isinstance(v, (dict, list)) else v
                                for v in (row[c] for c in columns)])


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold a lock named `name` across processes for the block (not a transaction): a PostgreSQL advisory
    lock, or for SQLite a file lock beside the database file."""
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(f"docket:{name}".encode()).digest()[:7], "big")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    import fcntl

    database = engine.url.database or ""
    path = Path(f"{database}.{name}.lock") if database and database != ":memory:" else None
    if path is None:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
