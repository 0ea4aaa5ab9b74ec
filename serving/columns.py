"""Query results as typed columns: the store's edge for reading many rows at once.

A worker reads its whole history at start and the rows changed since its last look before every scoring
pass. Through SQLAlchemy's Row objects plus a full contract check of rows the store checked on the way in,
that cost ~90 s at a million reports and ~100 ms for a handful of new rows (docs/benchmarks.md). Here
PostgreSQL sends a few rows through COPY as CSV, parsed by pyarrow straight into typed columns, and a bulk read
(`bulk=True`) through the ADBC driver, which builds the Arrow columns in C++, on its own connection that joins
the reading transaction's exported snapshot (so it sees exactly what the other reads of that transaction see);
SQLite's rows come from the driver cursor, one conversion per column. Every path gives an Arrow table, so the
stores agree on types.
"""
from __future__ import annotations

import io
from collections.abc import Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Select

# The Arrow type of each contract kind (features.contract): timestamps are microseconds in UTC, as the
# contract's canonical dtype.
ARROW_TYPES: dict[str, pa.DataType] = {
    "str": pa.string(), "category": pa.string(), "timestamp": pa.timestamp("us", tz="UTC"),
    "float": pa.float64(), "int": pa.int64(), "bool": pa.bool_(),
}
NULL = r"\N"  # COPY's marker for a missing value, so that an empty string stays an empty string


SNAPSHOT = "docket_snapshot"  # conn.info key: the PostgreSQL snapshot a reading transaction exported


def read_frame(conn: Connection, query: Select, kinds: Mapping[str, str], *, bulk: bool = False) -> pd.DataFrame:
    """The query's rows as a frame whose columns are named and typed by `kinds` (name -> contract kind), in
    the query's column order. Bound parameters must be plain numbers or text (all the store's reads bind).
    `bulk`: many rows expected; on PostgreSQL inside a transaction that exported its snapshot, read through ADBC."""
    if conn.dialect.name != "postgresql":
        table = _fetch(conn, query, kinds)
    elif bulk and conn.info.get(SNAPSHOT):
        table = _adbc(conn, query, kinds)
    else:
        table = _copy(conn, query, kinds)
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


def _copy(conn: Connection, query: Select, kinds: Mapping[str, str]) -> pa.Table:
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, NULL '{NULL}')", compiled.params) as copy:
            for block in copy:
                buffer.write(block)
    names = list(kinds)
    if not buffer.tell():
        return _empty(kinds)
    buffer.seek(0)
    return pacsv.read_csv(buffer, read_options=pacsv.ReadOptions(column_names=names),
                          convert_options=pacsv.ConvertOptions(
                              column_types={n: ARROW_TYPES[k] for n, k in kinds.items()},
                              null_values=[NULL], strings_can_be_null=True, quoted_strings_can_be_null=False,
                              true_values=["t"], false_values=["f"]))


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
    return pa.table({n: _column(values, k) for (n, k), values in zip(kinds.items(), columns)})


def _column(values: tuple, kind: str) -> pa.Array:
    """One column of SQLite values: timestamps are stored as UTC text, flags as 0/1."""
    if kind == "timestamp":
        return pa.array(values, pa.string()).cast(pa.timestamp("us")).cast(ARROW_TYPES[kind])
    if kind == "bool":
        return pa.array(values, pa.int64()).cast(pa.bool_())
    return pa.array(values, ARROW_TYPES[kind])


def _empty(kinds: Mapping[str, str]) -> pa.Table:
    return pa.table({n: pa.array([], ARROW_TYPES[k]) for n, k in kinds.items()})
