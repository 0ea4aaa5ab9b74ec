"""The contract's limits on text and time, as the request checks apply them (serving/input_checks.py, the _Fields
reader of serving/api/penalty_bodies.py): one message per field, before anything is stored."""
from __future__ import annotations

import pandas as pd
import pytest

from features.contract import ID_MAX, REPORTS, TABLES, TEXT_MAX, TIME_RANGE
from serving.api.penalty_bodies import _Fields, parse_account, parse_penalty_request, parse_violation
from serving.input_checks import FieldError, RequestError, check_records, check_text, parse_timestamp


def timestamp(value):
    errors: list[FieldError] = []
    return parse_timestamp(value, "t", errors), [e.message for e in errors]


@pytest.mark.parametrize("value, expected", [
    ("2025-11-02T20:15:00Z", "2025-11-02T20:15:00+00:00"),
    ("2025-11-02T20:15:00", "2025-11-02T20:15:00+00:00"),
    ("2025-11-02 20:15", "2025-11-02T20:15:00+00:00"),
    ("2025-11-02", "2025-11-02T00:00:00+00:00"),
    ("2025-11-02T20:15:00+01:00", "2025-11-02T19:15:00+00:00"),
    ("2025-11-02T20:15:00-0530", "2025-11-03T01:45:00+00:00"),
    ("2025-11-02T20:15:00.123456789z", "2025-11-02T20:15:00.123456+00:00"),
    ("2000-01-01T00:00:00Z", "2000-01-01T00:00:00+00:00"),
    ("2099-12-31T23:59:59Z", "2099-12-31T23:59:59+00:00"),
])
def test_iso_8601_times_are_read_as_utc(value, expected):
    ts, errors = timestamp(value)
    assert errors == [] and ts.isoformat() == expected and ts.tzinfo is not None


@pytest.mark.parametrize("value", ["now", "today", "yesterday", "1730000000", "2025/11/02", "Nov 2 2025",
                                   "2025-13-01", "2025-02-30T00:00:00Z", "2025-11-02T25:00:00Z",
                                   "2025-11-02T20:15:00+99:00", "", " 2025-11-02", "2025-11-02T20:15:00Z" + "0" * 50])
def test_anything_but_iso_8601_is_refused(value):
    ts, errors = timestamp(value)
    assert ts is None and len(errors) == 1 and "is not an ISO-8601 timestamp" in errors[0]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "1000-01-01T00:00:00Z",
                                   "1677-09-22T00:00:00Z", "1999-12-31T23:59:59Z", "2000-01-01T00:30:00+01:00",
                                   "2100-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"])
def test_times_outside_the_contracts_range_are_refused_in_utc(value):
    ts, errors = timestamp(value)
    assert ts is None and errors == [f"{value} is outside {TIME_RANGE[0].date()} to {TIME_RANGE[1].date()} (exclusive)"]


@pytest.mark.parametrize("value", [None, 20251102, 1.5, ["2025-11-02"]])
def test_a_time_must_be_a_string(value):
    assert "expected an ISO-8601 timestamp string" in timestamp(value)[1][0]


def test_every_text_column_of_the_contract_has_a_limit():
    assert all(c.max_length for t in TABLES.values() for c in t.columns if c.kind == "str")
    assert REPORTS.column("description").max_length == TEXT_MAX
    assert REPORTS.column("report_id").max_length == ID_MAX


def test_text_at_the_limit_passes_and_one_more_character_is_named():
    errors: list[FieldError] = []
    assert check_text("x" * ID_MAX, ID_MAX, "f", errors) == "x" * ID_MAX and errors == []
    assert check_text("x" * (ID_MAX + 1), ID_MAX, "f", errors) is None
    assert errors == [FieldError("f", f"is {ID_MAX + 1} characters long (at most {ID_MAX})")]


REPORT = {"report_id": "r-1", "created_at": "2025-11-02T20:15:00Z", "reporter_id": "a1", "reporter_type": "buyer",
          "channel": "livestream", "subject_id": "a2", "show_id": None, "order_id": None, "category": "spam",
          "description": ""}


@pytest.mark.parametrize("change, field", [
    ({"report_id": "r" * (ID_MAX + 1)}, "reports[0].report_id"),
    ({"subject_id": "s" * 1_048_576}, "reports[0].subject_id"),
    ({"show_id": "s" * (ID_MAX + 1)}, "reports[0].show_id"),
    ({"description": "d" * (TEXT_MAX + 1)}, "reports[0].description"),
    ({"category": "c" * 1000}, "reports[0].category"),
])
def test_report_text_over_its_limit_is_named(change, field):
    with pytest.raises(RequestError) as err:
        check_records([dict(REPORT, **change)], REPORTS, "reports", 10)
    assert [e.field for e in err.value.errors] == [field]
    assert len(str(err.value)) < 1000  # the message never echoes the text


def test_report_text_at_its_limits_passes():
    rows = check_records([dict(REPORT, report_id="r" * ID_MAX, description="d" * TEXT_MAX)], REPORTS, "reports", 10)
    assert isinstance(rows[0]["created_at"], pd.Timestamp)


def fields(parse, *args) -> dict[str, str]:
    errors: list[FieldError] = []
    parse(*args, errors)
    return {e.field: e.message for e in errors}


@pytest.mark.parametrize("body, expected", [
    ({}, {"account.account_id": "missing field", "account.role": "missing field"}),
    (None, {"account": "missing field"}),
    ([], {"account": "expected an object, got list"}),
    ({"account_id": "a" * (ID_MAX + 1), "role": "seller"},
     {"account.account_id": f"is {ID_MAX + 1} characters long (at most {ID_MAX})"}),
])
def test_an_empty_or_missing_account_names_its_fields(body, expected):
    assert fields(parse_account, body) == expected


def test_an_empty_violation_names_every_required_field():
    assert set(fields(parse_violation, {}, None)) == {f"violation.{f}" for f in
                                                       ("family", "category", "severity", "occurred_at")}


def test_a_penalty_request_with_empty_objects_is_refused_not_half_read():
    with pytest.raises(RequestError) as err:
        parse_penalty_request("2025-06-01T00:00:00Z", {}, {}, [{}])
    named = {e.field for e in err.value.errors}
    assert {"account.account_id", "violation.family", "history[0].occurred_at"} <= named


@pytest.mark.parametrize("name, limit", [("why", TEXT_MAX), ("notes", TEXT_MAX), ("actor", 128), ("violation_id", ID_MAX)])
def test_fields_text_keeps_each_fields_limit(name, limit):
    errors: list[FieldError] = []
    f = _Fields({name: "x" * limit}, "", errors)
    assert f.text(name) == "x" * limit and errors == []
    f = _Fields({name: "x" * (limit + 1)}, "", errors)
    assert f.text(name) is None and errors[0].field == name


def test_an_unknown_choice_is_quoted_short():
    errors: list[FieldError] = []
    _Fields({"role": "r" * 100_000}, "", errors).choice("role", ("a", "b"))
    assert len(errors[0].message) < 200
