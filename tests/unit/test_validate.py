"""Validation of raw tables against the data contract."""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.contract import TABLES
from features.validate import ContractError, Problem, validate_table, validate_tables


def ts(*values: str | None) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True)


def marketplace() -> dict[str, pd.DataFrame]:
    """A tiny consistent marketplace: one seller, two buyers, two orders, two reports."""
    accounts = pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3"],
            "created_at": ts("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"),
            "role": ["seller", "buyer", "buyer"],
            "verified": [True, False, True],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2"],
            "buyer_id": ["a2", "a3"],
            "seller_id": ["a1", "a1"],
            "show_id": ["s1", None],
            "amount": [25.0, 40.5],
            "created_at": ts("2024-02-01T10:00:00Z", "2024-02-02T10:00:00Z"),
            "ship_by": ts("2024-02-04T10:00:00Z", "2024-02-05T10:00:00Z"),
            "shipped_at": ts("2024-02-02T09:00:00Z", None),
            "delivered_at": ts("2024-02-05T12:00:00Z", None),
            "cancelled": [False, True],
            "cancelled_at": ts(None, "2024-02-02T11:00:00Z"),
            "refunded": [False, True],
            "refunded_at": ts(None, "2024-02-03T10:00:00Z"),
            "fraud": [True, False],
            "fraud_known_at": ts("2024-03-01T00:00:00Z", None),
        }
    )
    reports = pd.DataFrame(
        {
            "report_id": ["r1", "r2"],
            "created_at": ts("2024-02-06T08:00:00Z", "2024-02-07T08:00:00Z"),
            "reporter_id": ["a2", None],
            "reporter_type": ["buyer", "automated_detection"],
            "channel": ["direct_message", "system"],
            "subject_id": ["a1", "a1"],
            "show_id": [None, "s1"],
            "order_id": ["o1", None],
            "category": ["counterfeit", "spam"],
            "description": ["the watch is fake", ""],
        }
    )
    enforcements = pd.DataFrame(
        {
            "violation_id": ["v1"],
            "account_id": ["a1"],
            "occurred_at": ts("2024-02-01T10:00:00Z"),
            "decided_at": ts("2024-02-10T10:00:00Z"),
            "family": ["fraud"],
            "category": ["counterfeit"],
            "severity": ["high"],
            "action": ["suspension"],
            "action_days": np.array([30], dtype="int64"),
        }
    )
    outcomes = pd.DataFrame(
        {
            "report_id": ["r1", "r2"],
            "valid": [True, False],
            "severity": ["high", None],
            "fraud_confirmed": [True, False],
            "resolved_at": ts("2024-02-09T08:00:00Z", "2024-02-08T08:00:00Z"),
        }
    )
    return {
        "accounts": accounts,
        "orders": orders,
        "reports": reports,
        "enforcements": enforcements,
        "outcomes": outcomes,
    }


def problems_of(tables: dict[str, pd.DataFrame], **kwargs) -> list[Problem]:
    with pytest.raises(ContractError) as caught:
        validate_tables(tables, **kwargs)
    return caught.value.problems


def only_problem(tables: dict[str, pd.DataFrame], **kwargs) -> Problem:
    problems = problems_of(tables, **kwargs)
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


# --- valid data and normalisation -------------------------------------------------------------


def test_validate_tables_accepts_consistent_marketplace():
    frames = validate_tables(marketplace())
    assert set(frames) == {"accounts", "orders", "reports", "enforcements", "outcomes"}
    assert len(frames["orders"]) == 2


def test_validate_table_returns_canonical_dtypes_in_contract_order():
    frames = validate_tables(marketplace())
    expected = {
        "str": "str",
        "category": "str",
        "timestamp": "datetime64[us, UTC]",
        "float": "float64",
        "int": "int64",
        "bool": "bool",
    }
    for name, frame in frames.items():
        table = TABLES[name]
        assert tuple(frame.columns) == table.column_names
        for column in table.columns:
            assert str(frame[column.name].dtype) == expected[column.kind], (name, column.name)


def test_validate_table_reads_text_columns_like_csv():
    text = marketplace()["orders"].astype(object).map(lambda v: None if pd.isna(v) else str(v))
    text[["cancelled", "refunded", "fraud"]] = [["false", "0", "true"], ["1", "true", "0"]]
    frame = validate_table("orders", text)
    assert frame["amount"].tolist() == [25.0, 40.5]
    assert frame["cancelled"].tolist() == [False, True]
    assert frame["refunded"].tolist() == [False, True]
    assert frame["fraud"].tolist() == [True, False]
    assert frame["created_at"].iloc[0] == pd.Timestamp("2024-02-01T10:00:00Z")
    assert pd.isna(frame["show_id"].iloc[1])


def test_validate_table_reads_naive_timestamps_as_utc():
    accounts = marketplace()["accounts"]
    accounts["created_at"] = accounts["created_at"].dt.tz_localize(None)
    frame = validate_table("accounts", accounts)
    assert frame["created_at"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")


def test_validate_table_converts_other_zones_to_utc():
    accounts = marketplace()["accounts"]
    accounts["created_at"] = accounts["created_at"].dt.tz_convert("America/New_York")
    frame = validate_table("accounts", accounts)
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["created_at"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00Z")


def test_validate_table_parses_iso_strings_with_offsets():
    accounts = marketplace()["accounts"]
    accounts["created_at"] = ["2024-01-01T02:00:00+02:00", "2024-01-02", "2024-01-03T00:00:00"]
    frame = validate_table("accounts", accounts)
    assert frame["created_at"].tolist() == list(ts("2024-01-01", "2024-01-02", "2024-01-03"))


def test_validate_table_accepts_integral_floats_in_int_column():
    enforcements = marketplace()["enforcements"]
    enforcements["action_days"] = [30.0]
    assert validate_table("enforcements", enforcements)["action_days"].dtype == "int64"


def test_validate_table_accepts_all_empty_nullable_column_of_any_dtype():
    orders = marketplace()["orders"]
    orders["show_id"] = np.nan
    assert validate_table("orders", orders)["show_id"].isna().all()


# --- bring your own data: a payments data set ----------------------------------------------------

PAYMENTS_ORDER_COLUMNS = ["order_id", "buyer_id", "seller_id", "amount", "created_at", "fraud", "fraud_known_at"]


def test_a_payments_data_set_leaves_out_the_marketplace_columns_and_reads_them_as_the_contract_says():
    tables = marketplace()
    accounts = tables["accounts"].drop(columns=["verified"])
    orders = tables["orders"][PAYMENTS_ORDER_COLUMNS].assign(amount=[0.0, 40.5])  # a free order or card check
    frames = validate_tables({"accounts": accounts, "orders": orders}, require=["accounts", "orders"])
    assert list(frames["orders"].columns) == list(TABLES["orders"].column_names)
    assert list(frames["accounts"].columns) == list(TABLES["accounts"].column_names)
    assert frames["accounts"]["verified"].dtype == bool and not frames["accounts"]["verified"].any()
    assert not frames["orders"]["cancelled"].any() and not frames["orders"]["refunded"].any()
    absent = ["show_id", "ship_by", "shipped_at", "delivered_at", "cancelled_at", "refunded_at"]
    assert frames["orders"][absent].isna().all().all()
    assert frames["orders"]["ship_by"].dtype == "datetime64[us, UTC]"
    assert frames["orders"]["amount"].tolist() == [0.0, 40.5]
    assert frames["orders"]["fraud"].tolist() == [True, False]


def test_every_column_the_contract_lets_a_file_leave_out_says_what_that_means():
    optional = {(t.name, c.name) for t in TABLES.values() for c in t.columns if c.absent}
    assert optional == {("accounts", "verified"), *(("orders", c) for c in (
        "show_id", "ship_by", "shipped_at", "delivered_at", "cancelled", "cancelled_at", "refunded", "refunded_at"))}
    for name, column in optional:
        assert TABLES[name].column(column).kind == "bool" or TABLES[name].column(column).nullable


def test_shipped_at_left_out_beside_a_ship_by_is_a_problem_not_every_order_late():
    tables = marketplace()
    tables["orders"] = tables["orders"].drop(columns=["shipped_at", "delivered_at"])
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("orders", "shipped_at")
    assert "ship_by" in problem.message and "late" in problem.message


def test_a_flag_left_out_while_its_time_is_given_is_reported_by_the_flag_rule():
    tables = marketplace()
    tables["orders"] = tables["orders"].drop(columns=["cancelled"])  # o2 has a cancelled_at
    problem = only_problem(tables)
    assert (problem.table, problem.rows) == ("orders", 1) and "cancelled" in problem.message


# --- problems within a table ------------------------------------------------------------------


def test_missing_column_is_reported():
    tables = marketplace()
    tables["orders"] = tables["orders"].drop(columns=["amount"])
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("orders", "amount")
    assert "missing column" in str(problem)


def test_unexpected_column_is_reported_not_dropped():
    tables = marketplace()
    tables["accounts"]["nickname"] = ["x", "y", "z"]
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("accounts", "nickname")
    assert "not in the contract" in problem.message


def test_text_in_float_column_is_reported_with_examples():
    tables = marketplace()
    tables["orders"]["amount"] = ["25.0", "twelve"]
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == ("orders", "amount", 1)
    assert "'twelve'" in problem.message


@pytest.mark.parametrize("bad", ["yes", "TRUE", "t", "2"])
def test_non_boolean_in_bool_column_is_reported(bad):
    tables = marketplace()
    tables["accounts"]["verified"] = ["true", bad, "0"]
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == ("accounts", "verified", 1)
    assert repr(bad) in problem.message


def test_python_spelling_of_booleans_is_read_as_pandas_writes_it():
    tables = marketplace()
    tables["accounts"]["verified"] = ["True", "False", "true"]
    assert validate_tables(tables, require=["accounts"])["accounts"]["verified"].tolist() == [True, False, True]


def test_number_other_than_zero_or_one_in_bool_column_is_reported():
    tables = marketplace()
    tables["accounts"]["verified"] = [1, 0, 2]
    assert only_problem(tables).column == "verified"


def test_fractional_number_in_int_column_is_reported():
    tables = marketplace()
    tables["enforcements"]["action_days"] = [2.5]
    problem = only_problem(tables)
    assert (problem.column, problem.rows) == ("action_days", 1)
    assert "cannot be read as int" in problem.message


def test_number_in_text_column_is_reported():
    tables = marketplace()
    tables["accounts"]["account_id"] = pd.Series(["a1", 2, "a3"], dtype=object)
    problems = problems_of(tables)
    assert str(problems[0]).startswith("accounts.account_id: 1 row cannot be read as str")


def test_text_over_the_contracts_limit_is_reported_without_echoing_it():
    """A data file may not bring in what the API refuses (issue 15, defect 1: one 1 MB id took the queue down)."""
    tables = marketplace()
    tables["reports"]["description"] = ["x" * 10_001, "fine"]
    tables["reports"]["show_id"] = [None, "s" * 1_048_576]
    problems = {p.column: p for p in problems_of(tables)}
    assert set(problems) == {"description", "show_id"}
    assert problems["description"].rows == 1 and "longer than 10,000 characters (the longest: 10,001" in str(
        problems["description"]) and "'r1'" in str(problems["description"])
    assert "longer than 128 characters (the longest: 1,048,576" in str(problems["show_id"])
    assert len(str(problems["show_id"])) < 300


def test_unparseable_timestamp_is_reported_with_count_and_examples():
    tables = marketplace()
    tables["accounts"]["created_at"] = ["2024-01-01", "yesterday", "2024-13-01"]
    problem = only_problem(tables)
    assert (problem.column, problem.rows) == ("created_at", 2)
    assert "'yesterday'" in problem.message and "'2024-13-01'" in problem.message


def test_null_in_non_nullable_column_is_reported_by_key():
    tables = marketplace()
    tables["orders"].loc[1, "amount"] = np.nan
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == ("orders", "amount", 1)
    assert "'o2'" in problem.message


def test_unknown_category_message_names_values_and_allowed():
    tables = marketplace()
    tables["reports"]["category"] = ["hatespeech", "spamm"]
    problem = only_problem(tables)
    assert str(problem).startswith("reports.category: 2 rows have unknown values 'hatespeech', 'spamm' (allowed: harassment,")


def test_category_spelling_is_not_mapped():
    tables = marketplace()
    tables["accounts"]["role"] = ["Seller", "buyer", "buyer"]
    assert "'Seller'" in only_problem(tables).message


def test_duplicate_keys_are_reported():
    tables = marketplace()
    tables["accounts"]["account_id"] = ["a1", "a2", "a2"]
    problems = problems_of(tables)
    duplicate = next(p for p in problems if p.table == "accounts")
    assert (duplicate.column, duplicate.rows) == ("account_id", 2)
    assert "'a2'" in duplicate.message


def test_timestamps_out_of_order_within_a_row_are_reported():
    tables = marketplace()
    tables["orders"].loc[0, "delivered_at"] = pd.Timestamp("2024-02-01T00:00:00Z")
    problem = only_problem(tables)
    assert (problem.column, problem.rows) == ("delivered_at", 1)
    assert "delivered_at before shipped_at" in problem.message and "'o1'" in problem.message


def test_time_order_ignores_rows_where_either_time_is_missing():
    tables = marketplace()
    tables["orders"]["shipped_at"] = pd.NaT
    validate_tables(tables)


def test_flag_true_without_its_time_is_reported():
    tables = marketplace()
    tables["orders"].loc[1, "cancelled_at"] = pd.NaT
    problem = only_problem(tables)
    assert (problem.column, problem.rows) == ("cancelled", 1)
    assert "cancelled true but no cancelled_at" in problem.message


def test_time_set_without_its_flag_is_reported():
    tables = marketplace()
    tables["orders"].loc[0, "refunded_at"] = pd.Timestamp("2024-02-03T00:00:00Z")
    problem = only_problem(tables)
    assert "refunded_at set but refunded false" in problem.message


@pytest.mark.parametrize(
    ("table", "column", "value"),
    [("orders", "amount", -0.01), ("orders", "amount", -5.0), ("enforcements", "action_days", -1), ("enforcements", "action_days", 36501)],
)
def test_impossible_numbers_are_reported(table, column, value):
    tables = marketplace()
    tables[table].loc[0, column] = value
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == (table, column, 1)


def test_infinite_amount_is_reported():
    tables = marketplace()
    tables["orders"].loc[0, "amount"] = np.inf
    assert only_problem(tables).column == "amount"


def test_truth_probability_outside_unit_interval_is_reported():
    truth = pd.DataFrame({"order_id": ["o1", "o2"], "p_fraud": [0.2, 1.5]})
    with pytest.raises(ContractError, match=r"truth_orders.p_fraud: 1 row has values not between 0 and 1"):
        validate_table("truth_orders", truth)


def test_enforcement_family_must_match_its_category():
    tables = marketplace()
    tables["enforcements"]["family"] = ["behavioral"]
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("enforcements", "family")


def test_severity_on_invalid_outcome_is_reported():
    tables = marketplace()
    tables["outcomes"].loc[1, "severity"] = "low"
    assert only_problem(tables).column == "severity"


def test_all_problems_of_a_table_are_collected_before_raising():
    tables = marketplace()
    orders = tables["orders"]
    orders["amount"] = [-1.0, np.nan]
    orders["cancelled"] = ["no", "true"]
    orders.loc[0, "ship_by"] = pd.Timestamp("2024-01-01T00:00:00Z")
    with pytest.raises(ContractError) as caught:
        validate_table("orders", orders)
    columns = [p.column for p in caught.value.problems]
    assert columns == ["amount", "cancelled", "ship_by", "amount"]


# --- problems across tables -------------------------------------------------------------------


def test_reference_to_unknown_account_is_reported_with_examples():
    tables = marketplace()
    tables["reports"]["subject_id"] = ["a1", "ghost"]
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == ("reports", "subject_id", 1)
    assert "not found in accounts.account_id: 'ghost'" in problem.message


def test_missing_optional_reference_is_not_a_dangling_reference():
    tables = marketplace()
    tables["reports"]["order_id"] = [None, None]
    validate_tables(tables)


def test_outcome_resolved_before_its_report_is_reported():
    tables = marketplace()
    tables["outcomes"].loc[0, "resolved_at"] = pd.Timestamp("2024-02-05T00:00:00Z")
    problem = only_problem(tables)
    assert (problem.table, problem.column, problem.rows) == ("outcomes", "resolved_at", 1)
    assert "before reports.created_at" in problem.message and "'r1'" in problem.message


def test_report_before_its_order_is_reported():
    tables = marketplace()
    tables["reports"].loc[0, "created_at"] = pd.Timestamp("2024-01-15T00:00:00Z")
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("reports", "created_at")
    assert "before orders.created_at" in problem.message


def test_missing_required_table_is_reported():
    tables = marketplace()
    del tables["enforcements"]
    problem = only_problem(tables)
    assert (problem.table, problem.column) == ("enforcements", None)
    assert str(problem) == "enforcements: missing table (required)"


def test_require_subset_validates_partial_data_set():
    tables = marketplace()
    partial = {"accounts": tables["accounts"], "orders": tables["orders"]}
    assert set(validate_tables(partial, require=["accounts", "orders"])) == {"accounts", "orders"}


def test_require_subset_still_reports_missing_listed_table():
    tables = marketplace()
    problem = only_problem({"accounts": tables["accounts"]}, require=["accounts", "orders"])
    assert problem.table == "orders"


def test_require_with_unknown_table_name_is_a_programming_error():
    with pytest.raises(ValueError, match="ordres"):
        validate_tables(marketplace(), require=["ordres"])


def test_unknown_table_is_reported():
    tables = marketplace()
    tables["sellers"] = pd.DataFrame({"x": [1]})
    assert only_problem(tables).table == "sellers"


def test_problems_from_all_tables_and_links_are_raised_together():
    tables = marketplace()
    tables["accounts"]["role"] = ["seller", "buyer", "robot"]
    tables["orders"]["buyer_id"] = ["a2", "nobody"]
    del tables["outcomes"]
    tables_named = {(p.table, p.column) for p in problems_of(tables)}
    assert tables_named == {("accounts", "role"), ("orders", "buyer_id"), ("outcomes", None)}


# --- the error itself -------------------------------------------------------------------------


def test_error_message_has_one_line_per_problem_naming_table_column_and_rows():
    tables = marketplace()
    tables["reports"]["category"] = ["hatespeech", "spam"]
    tables["orders"].loc[:, "amount"] = [-0.5, -2.0]
    with pytest.raises(ContractError) as caught:
        validate_tables(tables)
    lines = str(caught.value).splitlines()
    assert lines == [
        "orders.amount: 2 rows have values not >= 0 (e.g. -0.5, -2.0)",
        "reports.category: 1 row has unknown values 'hatespeech' (allowed: "
        + ", ".join(TABLES["reports"].column("category").allowed)
        + ")",
    ]


def test_examples_are_limited_to_three():
    tables = marketplace()
    accounts = pd.concat([tables["accounts"]] * 3, ignore_index=True)
    accounts["account_id"] = [f"a{i}" for i in range(len(accounts))]
    accounts["role"] = ["r1", "r2", "r3", "r4", "r5", "r6", "buyer", "buyer", "seller"]
    problem = only_problem({"accounts": accounts}, require=["accounts"])
    assert problem.rows == 6
    assert "'r1', 'r2', 'r3' (allowed" in problem.message


def test_contract_error_survives_pickling():
    error = ContractError([Problem("orders", "amount", 2, "2 rows are bad")])
    assert pickle.loads(pickle.dumps(error)).problems == error.problems
