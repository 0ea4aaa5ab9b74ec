"""Loading and writing data folders: CSV and Parquet, and every way a folder can be wrong."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from features.io import load_tables, write_tables
from features.validate import ContractError

# A tiny consistent marketplace, written by hand as a feed would be.
CSV: dict[str, str] = {
    "accounts": """\
account_id,created_at,role,verified
a1,2024-01-01T00:00:00Z,seller,true
a2,2024-01-02T00:00:00Z,buyer,false
a3,2024-01-03T00:00:00+01:00,buyer,1
""",
    "orders": """\
order_id,buyer_id,seller_id,show_id,amount,created_at,ship_by,shipped_at,delivered_at,cancelled,cancelled_at,refunded,refunded_at,fraud,fraud_known_at
o1,a2,a1,s1,25.0,2024-02-01T10:00:00Z,2024-02-04T10:00:00Z,2024-02-02T09:00:00Z,2024-02-05T12:00:00Z,false,,false,,true,2024-03-01T00:00:00Z
o2,a3,a1,,40.5,2024-02-02 10:00:00,2024-02-05T10:00:00Z,,,true,2024-02-02T11:00:00Z,true,2024-02-03T10:00:00Z,false,
""",
    "reports": """\
report_id,created_at,reporter_id,reporter_type,channel,subject_id,show_id,order_id,category,description
r1,2024-02-06T08:00:00Z,a2,buyer,direct_message,a1,,o1,counterfeit,"the watch is fake, and the box too"
r2,2024-02-07T08:00:00Z,,automated_detection,system,a1,s1,,spam,
""",
    "enforcements": """\
violation_id,account_id,occurred_at,decided_at,family,category,severity,action,action_days
v1,a1,2024-02-01T10:00:00Z,2024-02-10T10:00:00Z,fraud,counterfeit,high,suspension,30
""",
    "outcomes": """\
report_id,valid,severity,fraud_confirmed,resolved_at
r1,true,high,true,2024-02-09T08:00:00Z
r2,false,,false,2024-02-08T08:00:00Z
""",
}


def write_csv(folder: Path, tables: dict[str, str] = CSV) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in tables.items():
        (folder / f"{name}.csv").write_text(text, encoding="utf-8")
    return folder


def test_csv_load_types_values_by_contract(tmp_path):
    frames = load_tables(write_csv(tmp_path / "csv"))
    accounts, orders, reports = frames["accounts"], frames["orders"], frames["reports"]
    assert accounts["verified"].tolist() == [True, False, True]
    assert accounts["created_at"].iloc[2] == pd.Timestamp("2024-01-02T23:00:00Z")
    assert orders["amount"].dtype == "float64" and orders["amount"].tolist() == [25.0, 40.5]
    assert orders["created_at"].iloc[1] == pd.Timestamp("2024-02-02T10:00:00Z")
    assert frames["enforcements"]["action_days"].dtype == "int64"
    assert reports["description"].iloc[0] == "the watch is fake, and the box too"


def test_csv_empty_field_is_missing_except_in_free_text(tmp_path):
    frames = load_tables(write_csv(tmp_path / "csv"))
    reports = frames["reports"]
    assert pd.isna(reports["reporter_id"].iloc[1])
    assert pd.isna(reports["order_id"].iloc[1])
    assert reports["description"].iloc[1] == ""
    assert pd.isna(frames["outcomes"]["severity"].iloc[1])


def test_csv_load_equals_parquet_load(tmp_path):
    from_csv = load_tables(write_csv(tmp_path / "csv"))
    write_tables(from_csv, tmp_path / "parquet")
    from_parquet = load_tables(tmp_path / "parquet")
    assert set(from_csv) == set(from_parquet)
    for name in from_csv:
        pd.testing.assert_frame_equal(from_csv[name], from_parquet[name])


def test_csv_bool_spelled_otherwise_is_reported(tmp_path):
    folder = write_csv(tmp_path / "csv", {**CSV, "accounts": CSV["accounts"].replace("seller,true", "seller,yes")})
    with pytest.raises(ContractError, match=r"accounts.verified: 1 row cannot be read as bool .*'yes'"):
        load_tables(folder)


def test_csv_text_in_amount_is_reported(tmp_path):
    folder = write_csv(tmp_path / "csv", {**CSV, "orders": CSV["orders"].replace(",25.0,", ",25 USD,")})
    with pytest.raises(ContractError) as caught:
        load_tables(folder)
    assert [str(p) for p in caught.value.problems] == ["orders.amount: 1 row cannot be read as float (a finite number) (e.g. '25 USD')"]


def test_csv_empty_id_is_reported_as_missing_value(tmp_path):
    folder = write_csv(tmp_path / "csv", {**CSV, "enforcements": CSV["enforcements"].replace("v1,a1,", "v1,,")})
    with pytest.raises(ContractError, match=r"enforcements.account_id: 1 row is empty"):
        load_tables(folder)


def test_write_tables_creates_folder_and_returns_paths(tmp_path):
    frames = load_tables(write_csv(tmp_path / "csv"))
    paths = write_tables(frames, tmp_path / "new" / "data")
    assert paths == {name: tmp_path / "new" / "data" / f"{name}.parquet" for name in frames}
    assert all(p.is_file() for p in paths.values())
    assert not list((tmp_path / "new" / "data").glob("*.partial"))


def test_write_tables_rejects_unknown_table(tmp_path):
    with pytest.raises(ValueError, match="sellers"):
        write_tables({"sellers": pd.DataFrame({"x": [1]})}, tmp_path)


def test_load_reports_table_present_as_both_csv_and_parquet(tmp_path):
    folder = write_csv(tmp_path / "data")
    write_tables({"accounts": load_tables(folder)["accounts"]}, folder)
    with pytest.raises(ContractError) as caught:
        load_tables(folder)
    problem = caught.value.problems[0]
    assert len(caught.value.problems) == 1
    assert problem.table == "accounts"
    assert "accounts.parquet and accounts.csv" in problem.message


def test_load_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_tables(tmp_path / "nowhere")


def test_load_empty_folder_names_the_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a table")
    with pytest.raises(FileNotFoundError, match="empty holds no tables"):
        load_tables(tmp_path / "empty")


def test_load_corrupt_parquet_is_a_problem_naming_the_file(tmp_path):
    folder = write_csv(tmp_path / "data")
    (folder / "orders.csv").unlink()
    (folder / "orders.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(ContractError) as caught:
        load_tables(folder)
    problems = caught.value.problems
    assert problems[0].table == "orders"
    assert "cannot read" in problems[0].message and "orders.parquet" in problems[0].message
    # The unreadable table is not also reported as missing; its dependants' links are simply not checked.
    assert [p.message for p in problems if "missing table" in p.message] == []


def test_load_missing_required_table_is_reported(tmp_path):
    folder = write_csv(tmp_path / "data")
    (folder / "outcomes.csv").unlink()
    with pytest.raises(ContractError, match=r"^outcomes: missing table \(required\)$"):
        load_tables(folder)


def test_load_with_require_subset_accepts_partial_folder(tmp_path):
    folder = write_csv(tmp_path / "data", {"accounts": CSV["accounts"], "orders": CSV["orders"]})
    frames = load_tables(folder, require=["accounts", "orders"])
    assert set(frames) == {"accounts", "orders"}


def test_load_collects_problems_of_every_table(tmp_path):
    broken = {
        **CSV,
        "reports": CSV["reports"].replace(",spam,", ",spamm,"),
        "outcomes": CSV["outcomes"].replace("r1,true,high", "r9,true,high"),
    }
    with pytest.raises(ContractError) as caught:
        load_tables(write_csv(tmp_path / "data", broken))
    assert {(p.table, p.column) for p in caught.value.problems} == {
        ("reports", "category"),
        ("outcomes", "report_id"),
    }
