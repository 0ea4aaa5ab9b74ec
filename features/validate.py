"""Validation of raw tables against the data contract (`features.contract`).

Raw data is checked once, at the boundary, and everything downstream relies on
the normalised frames this module returns: canonical dtypes, contract column
order, a fresh RangeIndex. Values are never guessed into shape: a value that
cannot be read losslessly as its column's kind is a problem, not a conversion.

All problems of all tables are collected and raised together as one
`ContractError`, so a broken feed is fixed in one round trip instead of one
problem at a time. Every check is a vectorised pandas or Arrow operation:
validating millions of rows takes seconds.

Reading rules, per kind:
  * timestamp: tz-aware datetimes (converted to UTC), naive datetimes (read as
    UTC, as the contract says) or ISO-8601 strings parsed strictly.
  * bool: booleans, the numbers 0/1 or exactly the strings true/false/1/0.
  * int: integers, integral floats (a float column is how pandas stores ints
    next to a missing value) or strings of digits.
  * float: numbers or numeric strings; infinities are rejected.
  * str/category: text only; numbers are not silently turned into ids.
A column holding only missing values is accepted whatever its dtype, since
files carry no usable type for an all-empty column.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import vocabulary as V
from features.contract import REFERENCES, TABLES, Column, Table

MAX_EXAMPLES = 3
# The only spellings of a boolean accepted in text (CSV) input: JSON's, Python's (what pandas' to_csv writes) and
# 0/1. Anything else ("yes", "t", "TRUE") is a problem rather than a guess.
BOOL_STRINGS: dict[str, bool] = {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}
# Digits with an optional minus: "3.0", "1e3" or " 3" in an int column are typos, not numbers to round.
# At most 18 digits, so every match fits in int64.
INT_PATTERN = r"-?\d{1,18}"

CANONICAL_DTYPES: dict[str, str] = {
    "str": "str",
    "category": "str",
    "timestamp": "datetime64[us, UTC]",
    "float": "float64",
    "int": "int64",
    "bool": "bool",
}
# A nullable int or bool column needs pandas' masked dtype to hold missing values.
NULLABLE_DTYPES: dict[str, str] = {"int": "Int64", "bool": "boolean"}

# How each kind is named when a value cannot be read as it.
KIND_READINGS: dict[str, str] = {
    "str": "str (text)",
    "category": "category (text)",
    "timestamp": "timestamp (ISO-8601)",
    "float": "float (a finite number)",
    "int": "int (a whole number)",
    "bool": "bool (true/false/1/0)",
}


@dataclass(frozen=True)
class Problem:
    """One way a table breaks the contract; `rows` is 0 for problems of shape (missing table or column)."""

    table: str
    column: str | None
    rows: int
    message: str

    def __str__(self) -> str:
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        return f"{where}: {self.message}"


class ContractError(ValueError):
    """Raw data does not match the data contract; `problems` lists everything found, one line each."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self):
        # Pickle by problems, not by message, so the error survives process boundaries intact.
        return (type(self), (self.problems,))


@dataclass(frozen=True)
class Range:
    """A numeric sanity bound: values outside it are impossible, not merely unusual."""

    table: str
    column: str
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        if self.high is None:
            return f">= {self.low:g}"
        if self.low is None:
            return f"<= {self.high:g}"
        return f"between {self.low:g} and {self.high:g}"

    def outside(self, values: pd.Series) -> pd.Series:
        bad = pd.Series(False, index=values.index)
        if self.low is not None:
            bad |= values < self.low
        if self.high is not None:
            bad |= values > self.high
        return bad


RANGES: tuple[Range, ...] = (
    Range("orders", "amount", low=0),
    Range("enforcements", "action_days", low=0, high=36500),
    *(
        Range(t, c.name, low=0, high=1)
        for t in ("truth_reports", "truth_orders")
        for c in TABLES[t].columns
        if c.name.startswith("p_")
    ),
)


@dataclass(frozen=True)
class LinkedOrder:
    """`table.column` must not be earlier than `ref_table.ref_column` of the row `table.link` points to."""

    table: str
    column: str
    link: str
    ref_table: str
    ref_column: str

    def describe(self) -> str:
        return (
            f"`{self.table}.{self.column}` is not before `{self.ref_table}.{self.ref_column}` "
            f"of the row its `{self.link}` points to"
        )


LINKED_ORDERS: tuple[LinkedOrder, ...] = (
    LinkedOrder("outcomes", "resolved_at", "report_id", "reports", "created_at"),
    LinkedOrder("reports", "created_at", "order_id", "orders", "created_at"),
)

# Rules the contract states in words rather than as data; checked here and listed in the docs.
CONSISTENCY_RULES: tuple[str, ...] = (
    "`enforcements.family` is the family of `enforcements.category` (see the vocabulary).",
    "`outcomes.severity` is empty when `outcomes.valid` is false.",
)


# ----------------------------------------------------------------------------------------------
# Entry points


def required_tables(require: Iterable[str] | None = None) -> frozenset[str]:
    """The tables that must be present: the contract's required ones unless the caller narrows it."""
    if require is None:
        return frozenset(t.name for t in TABLES.values() if t.required)
    names = frozenset(require)
    unknown = sorted(names - set(TABLES))
    if unknown:
        raise ValueError(f"require names unknown tables: {', '.join(unknown)}")
    return names


def validate_table(name: str, df: pd.DataFrame) -> pd.DataFrame:
    """Check one table on its own and return it normalised; raises ContractError listing every problem."""
    if name not in TABLES:
        raise ContractError([_unknown_table(name)])
    frame, problems = check_table(TABLES[name], df)
    if problems:
        raise ContractError(problems)
    return frame


def validate_tables(
    tables: Mapping[str, pd.DataFrame], require: Iterable[str] | None = None
) -> dict[str, pd.DataFrame]:
    """Check a data set: each table, the required ones being present, and the links between tables.

    `require` narrows the tables that must be present (default: every table
    the contract marks required) so partial data sets can be validated; links
    into a table that is absent are not checked.
    """
    required = required_tables(require)
    problems = [_unknown_table(name) for name in tables if name not in TABLES]
    frames: dict[str, pd.DataFrame] = {}
    for name, table in TABLES.items():
        if name in tables:
            frames[name], found = check_table(table, tables[name])
            problems += found
        elif name in required:
            problems.append(Problem(name, None, 0, "missing table (required)"))
    problems += check_links(frames)
    if problems:
        raise ContractError(problems)
    return frames


def check_table(table: Table, df: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    """Normalise what can be normalised and list every problem of one table.

    The frame holds the contract columns that are present, in contract order;
    values that could not be read are missing in it, so the later checks
    neither trip over them nor report them a second time.
    """
    df = df.reset_index(drop=True)
    repeated = df.columns.duplicated()
    problems = [Problem(table.name, str(c), 0, "column appears more than once") for c in df.columns[repeated].unique()]
    df = df.loc[:, ~repeated]
    problems += [Problem(table.name, c.name, 0, "missing column") for c in table.columns
                 if c.name not in df.columns and c.absent is None]
    problems += _absent_together(table, df)
    problems += [
        Problem(table.name, str(c), 0, "unexpected column (not in the contract)")
        for c in df.columns
        if c not in table.column_names
    ]
    columns: dict[str, pd.Series] = {}
    for column in table.columns:
        if column.name in df.columns:
            columns[column.name], found = _check_column(table, column, df[column.name], df)
            problems += found
        elif column.absent is not None:  # an optional column the file leaves out: what its absence means
            columns[column.name] = _absent_values(column, df.index)
    frame = pd.DataFrame(columns, index=df.index)
    for check in (_check_key, _check_time_order, _check_flag_times, _check_ranges, _check_consistency):
        problems += check(table, frame)
    return frame, problems


# (column, column it may not be absent without): `shipped_at` absent beside a `ship_by` would make every order
# late, which is a file cut short rather than what the data means.
ABSENT_TOGETHER: tuple[tuple[str, str, str], ...] = (("orders", "shipped_at", "ship_by"),)


def _absent_together(table: Table, df: pd.DataFrame) -> list[Problem]:
    return [Problem(table.name, column, 0, f"missing column (it may be left out only when `{other}` is too: "
                                           f"with `{other}` and no `{column}` every order would count as late)")
            for name, column, other in ABSENT_TOGETHER
            if name == table.name and column not in df.columns and other in df.columns]


def _absent_values(column: Column, index: pd.Index) -> pd.Series:
    """An optional column the file leaves out, read as its documented meaning: all false, or all empty."""
    if column.kind == "bool":
        return pd.Series(False, index=index, dtype="bool")
    return _empty(pd.Series(None, index=index, dtype=object), column)


def check_links(frames: Mapping[str, pd.DataFrame]) -> list[Problem]:
    """Cross-table checks: references resolve and linked events happen in order."""
    problems: list[Problem] = []
    for name, column, ref_table, ref_key in REFERENCES:
        if _has(frames, name, column) and _has(frames, ref_table, ref_key):
            problems += _check_reference(TABLES[name], frames[name], column, frames[ref_table][ref_key], ref_table)
    for rule in LINKED_ORDERS:
        ref_key = TABLES[rule.ref_table].key
        if _has(frames, rule.table, rule.column, rule.link) and _has(frames, rule.ref_table, ref_key, rule.ref_column):
            problems += _check_linked_order(frames[rule.table], frames[rule.ref_table], rule, ref_key)
    return problems


# ----------------------------------------------------------------------------------------------
# Columns: reading each kind


def _check_column(table: Table, column: Column, raw: pd.Series, df: pd.DataFrame) -> tuple[pd.Series, list[Problem]]:
    """Read one column as its kind, then check missing and allowed values."""
    values, unreadable = read_column(raw, column)
    missing = values.isna() & ~unreadable
    problems = _problem(
        table.name, column.name, unreadable,
        lambda rows: f"{_rows(rows, 'cannot')} be read as {KIND_READINGS[column.kind]} ({_value_examples(raw[rows])})",
    )
    if not column.nullable:
        problems += _problem(
            table.name, column.name, missing,
            lambda rows: f"{_rows(rows, 'are')} empty, but the column is not nullable ({_row_examples(table, df, rows)})",
        )
    if column.allowed is not None:
        problems += _problem(
            table.name, column.name, values.notna() & ~values.isin(column.allowed),
            lambda rows: f"{_rows(rows, 'have')} unknown values {_values(values[rows])} "
            f"(allowed: {', '.join(column.allowed)})",
        )
    if column.kind == "str" and column.max_length is not None:  # what the API refuses, a file may not bring in
        lengths = values.str.len()
        problems += _problem(
            table.name, column.name, lengths > column.max_length,
            lambda rows: f"{_rows(rows, 'are')} longer than {column.max_length:,} characters "
            f"(the longest: {int(lengths[rows].max()):,}; {_row_examples(table, df, rows)})",
        )
    if column.kind in NULLABLE_DTYPES and not column.nullable and not values.isna().any():
        values = values.astype(CANONICAL_DTYPES[column.kind])
    return values, problems


def read_column(raw: pd.Series, column: Column) -> tuple[pd.Series, pd.Series]:
    """Read a column as its kind: (values, unreadable), where unreadable values are missing in `values`."""
    if isinstance(raw.dtype, pd.CategoricalDtype):
        raw = raw.astype(raw.cat.categories.dtype)
    present = raw.notna()
    if not present.any():
        return _empty(raw, column), _none(raw)
    values, unreadable = READERS[column.kind](raw)
    return values, unreadable & present


def _empty(raw: pd.Series, column: Column) -> pd.Series:
    if column.kind in NULLABLE_DTYPES:
        return pd.Series(pd.NA, index=raw.index, dtype=NULLABLE_DTYPES[column.kind])
    return pd.Series(None, index=raw.index, dtype=CANONICAL_DTYPES[column.kind])


def _none(raw: pd.Series) -> pd.Series:
    return pd.Series(False, index=raw.index)


def _is_text(raw: pd.Series) -> bool:
    """Whether the series holds only strings (and missing values), decided without a Python loop."""
    if raw.dtype == object:
        return pd.api.types.infer_dtype(raw, skipna=True) in ("string", "empty")
    return pd.api.types.is_string_dtype(raw)


def _is_numeric(raw: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw)


def _text_elements(raw: pd.Series) -> pd.Series:
    """Which elements of a mixed object column are strings (only reached when the data is already wrong)."""
    return raw.map(lambda v: isinstance(v, str), na_action="ignore").fillna(False).astype(bool)


def _read_str(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if _is_text(raw):
        return raw.astype("str"), _none(raw)
    if raw.dtype != object:
        return pd.Series(None, index=raw.index, dtype="str"), raw.notna()
    text = _text_elements(raw)
    return raw.where(text).astype("str"), ~text


def _read_float(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if _is_numeric(raw):
        values = raw.astype("float64")
    elif _is_text(raw):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
    elif raw.dtype == object:
        if pd.api.types.infer_dtype(raw, skipna=True) not in ("floating", "integer", "mixed-integer-float", "decimal"):
            raw = raw.where(_text_elements(raw))
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
    else:
        return pd.Series(np.nan, index=raw.index), raw.notna()
    unreadable = values.isna() | np.isinf(values)
    return values.mask(unreadable), unreadable


def _read_int(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_integer_dtype(raw):
        return raw.astype("Int64"), _none(raw)
    if _is_text(raw):
        text = raw.astype("str")
        digits = text.str.fullmatch(INT_PATTERN).fillna(False).astype(bool)
        # Arrow parses digits exactly, where going through float64 would round beyond 2**53.
        parsed = pc.cast(pa.array(text.where(digits), from_pandas=True), pa.int64())
        return pd.Series(parsed.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), index=raw.index), ~digits
    numbers, unreadable = _read_float(raw)
    integral = ~unreadable & (numbers == np.floor(numbers)) & (numbers.abs() < 2**63)
    return numbers.where(integral).astype("Int64"), ~integral


def _read_bool(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if pd.api.types.is_bool_dtype(raw):
        return raw.astype("boolean"), _none(raw)
    if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) == "boolean":
        return raw.astype("boolean"), _none(raw)
    if _is_numeric(raw):
        values = raw.map({0: False, 1: True})
    elif _is_text(raw):
        values = raw.map(BOOL_STRINGS)
    elif raw.dtype == object:
        values = raw.where(_text_elements(raw)).map(BOOL_STRINGS)
    else:
        return pd.Series(pd.NA, index=raw.index, dtype="boolean"), raw.notna()
    return values.astype("boolean"), values.isna()


def _read_timestamp(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    if isinstance(raw.dtype, pd.DatetimeTZDtype):
        return raw.dt.tz_convert("UTC").dt.as_unit("us"), _none(raw)
    if pd.api.types.is_datetime64_dtype(raw):
        return raw.dt.tz_localize("UTC").dt.as_unit("us"), _none(raw)
    if raw.dtype == object and pd.api.types.infer_dtype(raw, skipna=True) in ("datetime", "datetime64"):
        return pd.to_datetime(raw, utc=True).dt.as_unit("us"), _none(raw)
    if not (_is_text(raw) or raw.dtype == object):
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[us, UTC]"), raw.notna()
    if not _is_text(raw):
        raw = raw.where(_text_elements(raw))
    values = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce").dt.as_unit("us")
    return values, values.isna()


READERS: dict[str, Callable[[pd.Series], tuple[pd.Series, pd.Series]]] = {
    "str": _read_str,
    "category": _read_str,
    "float": _read_float,
    "int": _read_int,
    "bool": _read_bool,
    "timestamp": _read_timestamp,
}


# ----------------------------------------------------------------------------------------------
# Rows: rules within one table


def _check_key(table: Table, frame: pd.DataFrame) -> list[Problem]:
    if table.key is None or table.key not in frame:
        return []
    keys = frame[table.key]
    return _problem(
        table.name, table.key, keys.duplicated(keep=False) & keys.notna(),
        lambda rows: f"{_rows(rows, 'share')} duplicate values {_values(keys[rows])} (the key must be unique)",
    )


def _check_time_order(table: Table, frame: pd.DataFrame) -> list[Problem]:
    problems = []
    for earlier, later in table.time_order:
        if earlier in frame and later in frame:
            problems += _problem(
                table.name, later, frame[later] < frame[earlier],
                lambda rows: f"{_rows(rows, 'have')} {later} before {earlier} ({_row_examples(table, frame, rows)})",
            )
    return problems


def _check_flag_times(table: Table, frame: pd.DataFrame) -> list[Problem]:
    problems = []
    for flag, time in table.flag_times:
        if flag in frame and time in frame:
            flagged, timed = frame[flag], frame[time].notna()
            for wrong, what in (
                (flagged.eq(True) & ~timed, f"{flag} true but no {time}"),
                (flagged.eq(False) & timed, f"{time} set but {flag} false"),
            ):
                problems += _problem(
                    table.name, flag, wrong,
                    lambda rows: f"{_rows(rows, 'have')} {what} ({_row_examples(table, frame, rows)})",
                )
    return problems


def _check_ranges(table: Table, frame: pd.DataFrame) -> list[Problem]:
    problems = []
    for rule in RANGES:
        if rule.table == table.name and rule.column in frame:
            values = frame[rule.column]
            problems += _problem(
                table.name, rule.column, rule.outside(values),
                lambda rows: f"{_rows(rows, 'have')} values not {rule.describe()} ({_value_examples(values[rows])})",
            )
    return problems


def _check_consistency(table: Table, frame: pd.DataFrame) -> list[Problem]:
    """The rules in CONSISTENCY_RULES."""
    if table.name == "enforcements" and {"family", "category"} <= set(frame.columns):
        expected = frame["category"].map(V.CATEGORY_FAMILY)
        return _problem(
            table.name, "family", expected.notna() & frame["family"].notna() & frame["family"].ne(expected),
            lambda rows: f"{_rows(rows, 'have')} a family that is not their category's ({_row_examples(table, frame, rows)})",
        )
    if table.name == "outcomes" and {"valid", "severity"} <= set(frame.columns):
        return _problem(
            table.name, "severity", frame["valid"].eq(False) & frame["severity"].notna(),
            lambda rows: f"{_rows(rows, 'have')} a severity although valid is false ({_row_examples(table, frame, rows)})",
        )
    return []


# ----------------------------------------------------------------------------------------------
# Links: rules across tables


def _has(frames: Mapping[str, pd.DataFrame], table: str, *columns: str | None) -> bool:
    return table in frames and all(c is not None and c in frames[table] for c in columns)


def _positions(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """Where each value first occurs among keys (-1 when absent or missing).

    Arrow's hash lookup, because pandas' isin on a string column turns a large
    key set into Python objects one at a time (seconds per million keys).
    """
    def arrow(s: pd.Series) -> pa.Array:
        return pa.array(s.astype("str"), from_pandas=True).cast(pa.large_string())

    return pc.index_in(arrow(values), value_set=arrow(keys)).fill_null(-1).to_numpy(zero_copy_only=False)


def _check_reference(table: Table, frame: pd.DataFrame, column: str, keys: pd.Series, ref_table: str) -> list[Problem]:
    values = frame[column]
    return _problem(
        table.name, column, values.notna() & (_positions(values, keys.dropna()) < 0),
        lambda rows: f"{_rows(rows, 'have')} values not found in {ref_table}.{keys.name}: {_values(values[rows])}",
    )


def _check_linked_order(frame: pd.DataFrame, ref: pd.DataFrame, rule: LinkedOrder, ref_key: str) -> list[Problem]:
    # A duplicated key links to its first row; the duplicate itself is reported by the key check.
    positions = _positions(frame[rule.link], ref[ref_key])
    linked = positions >= 0
    if not linked.any():
        return []
    reference_time = ref[rule.ref_column].take(np.where(linked, positions, 0))
    reference_time.index = frame.index
    table = TABLES[rule.table]
    return _problem(
        rule.table, rule.column, linked & (frame[rule.column] < reference_time),
        lambda rows: f"{_rows(rows, 'have')} {rule.column} before {rule.ref_table}.{rule.ref_column} "
        f"of their {rule.link} ({_row_examples(table, frame, rows)})",
    )


# ----------------------------------------------------------------------------------------------
# Messages


def _problem(table: str, column: str, wrong: pd.Series, describe: Callable[[pd.Series], str]) -> list[Problem]:
    """One problem for the rows flagged in `wrong`, or none; `describe` only runs when some row is wrong."""
    wrong = wrong.fillna(False).astype(bool)
    if not wrong.any():
        return []
    return [Problem(table, column, int(wrong.sum()), describe(wrong))]


def _unknown_table(name: str) -> Problem:
    return Problem(str(name), None, 0, f"unknown table (the contract has: {', '.join(TABLES)})")


_SINGULAR = {"are": "is", "have": "has", "share": "shares", "cannot": "cannot"}


def _rows(rows: pd.Series, verb: str) -> str:
    n = int(rows.sum())
    return f"1 row {_SINGULAR[verb]}" if n == 1 else f"{n} rows {verb}"


def _format(value: object) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(value)


def _values(values: pd.Series) -> str:
    """The most frequent offending values, most frequent first."""
    common = values.astype(object).value_counts(sort=True, dropna=True).index[:MAX_EXAMPLES]
    return ", ".join(_format(v) for v in common)


def _value_examples(values: pd.Series) -> str:
    return f"e.g. {_values(values)}"


def _row_examples(table: Table, frame: pd.DataFrame, rows: pd.Series) -> str:
    """Name the first offending rows by key when there is one, else by 0-based position."""
    positions = np.flatnonzero(rows.to_numpy())[:MAX_EXAMPLES]
    if table.key is not None and table.key in frame:
        keys = frame[table.key].iloc[positions]
        if keys.notna().all():
            return f"e.g. {table.key} " + ", ".join(_format(k) for k in keys)
    return "e.g. rows " + ", ".join(str(p) for p in positions)


def as_canonical(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """A table already known to meet the contract (the store's own rows, checked when they came in) in the
    contract's column order and canonical dtypes, without checking it again: re-validating the few rows a
    worker reads before each scoring pass cost ~20 ms a table, most of a refresh."""
    table = TABLES[name]
    columns = {}
    for column in table.columns:
        values = frame[column.name]
        dtype = CANONICAL_DTYPES[column.kind]
        if column.kind in NULLABLE_DTYPES and (column.nullable or values.isna().any()):
            dtype = NULLABLE_DTYPES[column.kind]
        columns[column.name] = values if values.dtype == dtype else values.astype(dtype)
    return pd.DataFrame(columns).reset_index(drop=True)


def empty_table(name: str) -> pd.DataFrame:
    """A contract table with no rows, in the canonical dtypes (what loading an empty file gives)."""
    return _empty_table(name).copy()


@functools.cache
def _empty_table(name: str) -> pd.DataFrame:
    return validate_table(name, pd.DataFrame({c: pd.Series([], dtype=object) for c in TABLES[name].column_names}))
