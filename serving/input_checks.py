"""Parsing API request bodies into contract-shaped frames, with one message per offending field.

Rules come from the data contract (features.contract), so the API accepts
exactly what the reports table allows; only the shape of the messages is
HTTP-specific (`reports[3].category: ...`). Nothing is coerced: a number where
text is expected is an error, not a string.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from features.build import CATEGORICALS
from features.contract import ID_MAX, REPORTS, TIME_RANGE, Table
from features.history import History


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class RequestError(ValueError):
    """A request that cannot be processed; `errors` names every offending field."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))


# ISO-8601 as other systems write it: a date, or a date and a time (seconds and fractions optional), then an
# optional zone (Z or ±hh:mm). Nothing relative ("now", "today"), no other spelling pandas would guess at.
ISO_8601 = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.(\d{1,9}))?)?)?(?:Z|z|[+-]\d{2}:?\d{2})?")


def parse_timestamp(value: Any, field: str, errors: list[FieldError]) -> pd.Timestamp | None:
    """An ISO-8601 string as a UTC timestamp (no zone = UTC) within the contract's TIME_RANGE; records an error
    otherwise. Python's own parser reads it (pandas would take "now" and turn year 1 at +01:00 into 1972), and
    the range is checked in UTC, so every time that passes is one the store, the features and pandas can hold."""
    if not isinstance(value, str):
        errors.append(FieldError(field, f"expected an ISO-8601 timestamp string, got {type(value).__name__}"))
        return None
    match = ISO_8601.fullmatch(value) if len(value) <= 40 else None
    try:
        if match is None:
            raise ValueError(value)
        fraction = match.group(1)
        text = value.replace(f".{fraction}", f".{fraction[:6].ljust(6, '0')}") if fraction else value
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        errors.append(FieldError(field, f"{value[:40]!r} is not an ISO-8601 timestamp (such as 2025-06-01T12:00:00Z)"))
        return None
    earliest, latest = TIME_RANGE
    when = when.replace(tzinfo=earliest.tzinfo) if when.tzinfo is None else when
    if not earliest <= when < latest:
        errors.append(FieldError(field, f"{value} is outside {earliest.date()} to {latest.date()} (exclusive)"))
        return None
    return pd.Timestamp(when).tz_convert("UTC")


def check_text(value: Any, max_length: int, field: str, errors: list[FieldError]) -> str | None:
    """A JSON string of at most `max_length` characters (the contract's limit for the field)."""
    if not isinstance(value, str):
        errors.append(FieldError(field, f"expected a string, got {type(value).__name__}"))
        return None
    if len(value) > max_length:
        errors.append(FieldError(field, f"is {len(value):,} characters long (at most {max_length:,})"))
        return None
    return value


def _check_value(table: Table, name: str, value: Any, field: str, errors: list[FieldError]) -> Any:
    col = table.column(name)
    if value is None:
        if not col.nullable:
            errors.append(FieldError(field, "must not be null"))
        return None
    if col.kind == "timestamp":
        return parse_timestamp(value, field, errors)
    if col.kind in ("str", "category"):
        if check_text(value, col.max_length or ID_MAX, field, errors) is None:
            return None
        if col.allowed is not None and value not in col.allowed:
            errors.append(FieldError(field, f"unknown value {value[:ID_MAX]!r} (allowed: {', '.join(col.allowed)})"))
        return value
    return _check_scalar(col.kind, value, field, errors)


def _check_scalar(kind: str, value: Any, field: str, errors: list[FieldError]) -> Any:
    """A JSON boolean, a finite number or an integer, exactly: true is not 1, "3" is not 3, 2.5 is not an int."""
    if kind == "bool":
        if not isinstance(value, bool):
            errors.append(FieldError(field, f"expected true or false, got {type(value).__name__}"))
            return None
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            errors.append(FieldError(field, f"expected a finite number, got {value!r}"[:200]))
            return None
        return float(value)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**53:
            errors.append(FieldError(field, f"expected an integer, got {value!r}"[:200]))
            return None
        return value
    raise NotImplementedError(f"kind {kind} is not accepted over the API")


def check_records(payload: Any, table: Table, key: str, max_batch: int) -> list[dict[str, Any]]:
    """Validate a JSON list of records against `table`: one dict per record, every contract column present
    (timestamps parsed to UTC). Plain Python, no frame: a request's checks cost microseconds, so the
    service can validate each request on its own before scoring several together."""
    if not isinstance(payload, list):
        raise RequestError([FieldError(key, f"expected a list of {table.name}, got {type(payload).__name__}")])
    if not payload:
        raise RequestError([FieldError(key, "the batch is empty")])
    if len(payload) > max_batch:
        raise RequestError([FieldError(key, f"batch of {len(payload)} exceeds the maximum of {max_batch}")])
    errors: list[FieldError] = []
    rows = []
    required = {c.name for c in table.columns if not c.nullable}
    for i, record in enumerate(payload):
        where = f"{key}[{i}]"
        if not isinstance(record, dict):
            errors.append(FieldError(where, f"expected an object, got {type(record).__name__}"))
            continue
        for name in sorted(set(record) - set(table.column_names)):
            errors.append(FieldError(f"{where}.{name}", f"unknown field (allowed: {', '.join(table.column_names)})"))
        for name in sorted(required - set(record)):
            errors.append(FieldError(f"{where}.{name}", "missing field"))
        rows.append({
            name: _check_value(table, name, record[name], f"{where}.{name}", errors) if name in record else None
            for name in table.column_names
        })
    if table.key:
        seen: dict[str, int] = {}
        for i, row in enumerate(rows):
            k = row.get(table.key)
            if isinstance(k, str) and k in seen:
                errors.append(FieldError(f"{key}[{i}].{table.key}", f"duplicate of {key}[{seen[k]}]"))
            seen.setdefault(k, i)
    if errors:
        raise RequestError(errors)
    return rows


def records_frame(rows: list[dict[str, Any]], table: Table) -> pd.DataFrame:
    """Checked records (of one request or several) as a frame with the contract's columns and dtypes."""
    return pd.DataFrame({
        col.name: pd.DatetimeIndex([r[col.name] for r in rows], tz="UTC").as_unit("us") if col.kind == "timestamp"
        else [r[col.name] for r in rows]
        for col in table.columns
    })


def records_columns(rows: list[dict[str, Any]], table: Table) -> dict[str, list]:
    """Checked records as the contract's columns of plain values (features.build.Reports): what scoring a
    request's few reports takes, without the cost of a frame."""
    return {col.name: [r[col.name] for r in rows] for col in table.columns}


def parse_records(payload: Any, table: Table, key: str, max_batch: int) -> pd.DataFrame:
    """Validate a JSON list of records against `table`; returns a frame with the contract's columns."""
    return records_frame(check_records(payload, table, key, max_batch), table)


def check_reports(payload: Any, max_batch: int, history: History | None = None) -> list[dict[str, Any]]:
    """Reports from a request body, checked against the contract (and, given a history, a named order known to
    it must not be placed after the report). Accounts and orders not seen yet are allowed: a report about a
    brand-new account is scored with what is known (cold start, see cold_start)."""
    rows = check_records(payload, REPORTS, "reports", max_batch)
    errors = [FieldError(f"reports[{i}].reporter_id", "a report cannot be about its own reporter")
              for i, row in enumerate(rows) if row["reporter_id"] is not None and row["reporter_id"] == row["subject_id"]]
    if history is not None:
        created = history.order_times["created"]
        for i, row in enumerate(rows):
            order = history.order_code(row["order_id"]) if row["order_id"] is not None else -1
            if order >= 0 and int(created[order]) > int(row["created_at"].timestamp()):
                errors.append(FieldError(f"reports[{i}].order_id", "the order was placed after the report"))
    if errors:
        raise RequestError(errors)
    return rows


def parse_reports(payload: Any, max_batch: int, history: History | None = None) -> pd.DataFrame:
    """check_reports as a frame."""
    return records_frame(check_reports(payload, max_batch, history), REPORTS)


# The columns of a report that name an account or an order, and which lookup finds it.
REFERENCES = (("subject_id", "account"), ("reporter_id", "account"), ("order_id", "order"))


def cold_start(reports: pd.DataFrame | dict, history: History) -> list[list[str]]:
    """For each report, the fields naming an account or order this history does not know yet (scored with
    cold-start features: what is unknown counts as no history)."""
    columns = {c: list(reports[c]) for c, _ in REFERENCES}
    n = len(columns["subject_id"])
    out: list[list[str]] = [[] for _ in range(n)]
    for column, what in REFERENCES:
        lookup = history.account_code if what == "account" else history.order_code
        for i, value in enumerate(columns[column]):
            if isinstance(value, str) and lookup(value) < 0:
                out[i].append(column)
    return out


def parse_feature_rows(payload: Any, needed: list[str], max_batch: int, key: str = "dataframe_split") -> pd.DataFrame:
    """Feature rows in MLflow's `dataframe_split` shape ({"columns": [...], "data": [[...], ...]}) as a frame.

    Every column in `needed` must be there; categorical features are strings, every other value a number or
    null (missing). Extra columns are kept (the model picks its own).
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list) \
            or not isinstance(payload.get("data"), list):
        raise RequestError([FieldError(key, 'expected {"columns": [...], "data": [[...], ...]}')])
    columns, data = payload["columns"], payload["data"]
    names = [FieldError(f"{key}.columns[{i}]", f"expected a column name of at most {ID_MAX} characters")
             for i, c in enumerate(columns) if not isinstance(c, str) or len(c) > ID_MAX]
    if names:
        raise RequestError(names)
    if not data:
        raise RequestError([FieldError(f"{key}.data", "the batch is empty")])
    if len(data) > max_batch:
        raise RequestError([FieldError(f"{key}.data", f"batch of {len(data)} exceeds the maximum of {max_batch}")])
    errors = [FieldError(f"{key}.columns", f"missing column '{c}'") for c in needed if c not in columns]
    errors += [FieldError(f"{key}.data[{i}]", f"expected a list of {len(columns)} values")
               for i, row in enumerate(data) if not isinstance(row, list) or len(row) != len(columns)]
    if errors:
        raise RequestError(errors)
    text = [i for i, c in enumerate(columns) if c in CATEGORICALS]
    try:
        if not text:  # all numeric (order features): one conversion for the whole batch
            return pd.DataFrame(np.array(data, dtype=np.float64), columns=columns)
        frame = pd.DataFrame(data, columns=columns)
        numeric = [c for i, c in enumerate(columns) if i not in text]
        return frame.astype({c: np.float64 for c in numeric})
    except (TypeError, ValueError) as err:
        raise RequestError([FieldError(f"{key}.data", f"non-numeric value in a numeric column ({err})")]) from err
