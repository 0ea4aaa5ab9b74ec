"""Query results as typed columns: the store's edge for reading many rows at once.

A worker reads its whole history at start and the rows changed since its last look before every scoring
pass. Through SQLAlchemy's Row objects plus a full contract check of rows the store checked on the way in,
that cost ~90 s at a million reports and ~100 ms for a handful of new rows (docs/benchmarks.md). Here
a few rows come from the driver cursor as tuples, one Arrow conversion per column (through COPY, PostgreSQL
cost ~5 ms a statement to start: most of a refresh); on PostgreSQL a bulk read (`bulk=True`) goes through the
ADBC driver, which builds the Arrow columns in C++, on its own connection that joins the reading
transaction's exported snapshot (so it sees exactly what that transaction's other reads see). Every path gives
an Arrow table, so the stores agree on types.
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Select

# The Arrow type of each contract kind (features.contract): timestamps are microseconds in UTC, as the
# contract's canonical dtype.
ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(), "category": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
}


SNAPSHOT = "docket_snapshot"  # conn.info key: the PostgreSQL snapshot a reading transaction exported


def read_frame(conn: Connection, query: Select, kinds: Mapping[str, str], *, bulk: bool = False) -> pd.DataFrame:
    """The query's rows as a frame whose columns are named and typed by `kinds` (name -> contract kind), in
    the query's column order. `bulk`: many rows expected; on PostgreSQL inside a transaction that exported its
    snapshot, read through ADBC, with the parameters rendered into the SQL (plain numbers and text only)."""
    if bulk and conn.dialect.name == "postgresql" and conn.info.get(SNAPSHOT):
        table = _adbc(conn, query, kinds)
    else:
        table = _fetch(conn, query, kinds)
    return table.to_pandas(types_mapper=_NULLABLE.get)


def export_snapshot(conn: Connection) -> None:
    """Let bulk reads on other connections see what this (REPEATABLE READ) transaction sees, in its schema."""
    conn.info[SNAPSHOT] = conn.exec_driver_sql(
        "SELECT pg_export_snapshot(), current_setting('search_path')").one()


def _adbc(conn: Connection, query: Select, kinds: Mapping[str, str]) -> pa.Table:
    import adbc_driver_postgresql.dbapi as adbc

    sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True, "render_postcompile": True}))
    uri = conn.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with adbc.connect(uri) as other, other.cursor() as cur:
        snapshot, search_path = conn.info[SNAPSHOT]
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute(f"SET TRANSACTION SNAPSHOT {_quoted(snapshot)}")
        cur.execute(f"SELECT set_config('search_path', {_quoted(search_path)}, true)")
        cur.execute(sql)
        table = cur.fetch_arrow_table()
        other.rollback()
    return table.rename_columns(list(kinds)).cast(pa.schema([(n, ARROW_TYPES[k]) for n, k in kinds.items()]))


_NULLABLE = {pa.bool_(): pd.BooleanDtype(), pa.int64(): pd.Int64Dtype()}  # NULLs kept as pandas' NA


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _fetch(conn: Connection, query: Select, kinds: Mapping[str, str]) -> pa.Table:
    result = conn.execute(query)  # SQLAlchemy binds the parameters; the rows come from its driver cursor as tuples
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    if not rows:
        return _empty(kinds)
    columns = list(zip(*rows))
    del rows
    sqlite = conn.dialect.name == "sqlite"
    return pa.table({n: _column(values, k, sqlite) for (n, k), values in zip(kinds.items(), columns)})


def _column(values: tuple, kind: str, sqlite: bool) -> pa.Array:
    """One column of driver values. SQLite stores timestamps as UTC text and flags as 0/1; psycopg gives aware
    datetimes and bools."""
    if sqlite and kind == "timestamp":
        return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(ARROW_TYPES[kind])
    if sqlite and kind == "bool":
        return pa.array(values, pa.int64()).cast(pa.bool_())
    return pa.array(values, ARROW_TYPES[kind])


def _empty(kinds: Mapping[str, str]) -> pa.Table:
    return pa.table({n: pa.array([], ARROW_TYPES[k]) for n, k in kinds.items()})
