"""The command line: real processes, exit codes and readable one-line errors."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOCKET = str(Path(sys.executable).parent / "docket")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKET, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_simulate_writes_every_contract_table_and_validates(tmp_path):
    res = run("simulate", "--reports", "800", "--seed", "3", "--out", str(tmp_path / "d"))
    assert res.returncode == 0, res.stderr
    names = {p.stem for p in (tmp_path / "d").glob("*.parquet")}
    assert {"accounts", "orders", "reports", "enforcements", "outcomes", "truth_reports", "truth_orders"} <= names
    res = run("validate", "--data", str(tmp_path / "d"))
    assert res.returncode == 0 and "valid:" in res.stderr


def test_validate_rejects_bad_data_with_exit_2_and_no_traceback(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "accounts.csv").write_text("account_id,created_at,role,verified\na1,2025-01-01T00:00:00Z,admin,true\n")
    res = run("validate", "--data", str(d))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "accounts.role" in res.stderr and "admin" in res.stderr


def test_validate_takes_a_payments_data_set_and_says_what_it_serves(tmp_path):
    """Accounts and orders with only a payment's columns (no shipping, no verification, a 0.00 card check, booleans
    as pandas writes them) are a data set for order fraud; without orders it serves nothing and says so."""
    d = tmp_path / "pay"
    d.mkdir()
    (d / "accounts.csv").write_text("account_id,created_at,role\nb1,2025-01-01T00:00:00Z,buyer\n"
                                    "s1,2025-01-01T00:00:00Z,seller\n")
    (d / "orders.csv").write_text("order_id,buyer_id,seller_id,amount,created_at,fraud,fraud_known_at\n"
                                  "o1,b1,s1,0.00,2025-02-01T00:00:00Z,False,\n"
                                  "o2,b1,s1,19.99,2025-02-02T00:00:00Z,True,2025-03-01T00:00:00Z\n")
    res = run("validate", "--data", str(d))
    assert res.returncode == 0, res.stderr
    assert "valid: 2 accounts, 2 orders" in res.stderr and "serves: order fraud" in res.stderr
    assert "not for report models: needs reports, outcomes" in res.stderr
    (d / "orders.csv").unlink()
    res = run("validate", "--data", str(d))
    assert res.returncode == 2 and "serves no task" in res.stderr and "Traceback" not in res.stderr


def test_missing_data_folder_is_one_readable_line(tmp_path):
    res = run("train", "--data", str(tmp_path / "nowhere"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "nowhere" in res.stderr


def test_bad_option_value_is_rejected_by_the_cli(tmp_path):
    res = run("simulate", "--reports", "ten", "--out", str(tmp_path))
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_keys_create_prints_only_the_key_and_stores_only_its_hash(tmp_path):
    import os

    from sqlalchemy import select

    from serving.store import tables as T
    from serving.store.db import make_engine

    url = f"sqlite:///{tmp_path / 'keys.db'}"
    res = subprocess.run([DOCKET, "keys", "create", "--role", "investigator"], capture_output=True, text=True,
                         env={**os.environ, "DOCKET_DATABASE_URL": url}, timeout=120)
    assert res.returncode == 0, res.stderr
    key = res.stdout.strip()
    assert res.stdout == key + "\n" and key.startswith("dk_")
    with make_engine(url).connect() as conn:
        stored = conn.execute(select(T.api_keys.c.key_hash, T.api_keys.c.role)).all()
    assert len(stored) == 1 and stored[0][1] == "investigator"
    assert key.split("_", 2)[2] not in stored[0][0]
    bad = subprocess.run([DOCKET, "keys", "create", "--role", "boss"], capture_output=True, text=True,
                         env={**os.environ, "DOCKET_DATABASE_URL": url}, timeout=120)
    assert bad.returncode == 2 and "unknown role 'boss'" in bad.stderr and "Traceback" not in bad.stderr


def test_simulate_refuses_to_overwrite_a_data_set_without_force(tmp_path):
    out = tmp_path / "d"
    assert run("simulate", "--reports", "200", "--seed", "1", "--out", str(out)).returncode == 0
    before = (out / "reports.parquet").read_bytes()
    res = run("simulate", "--reports", "300", "--seed", "2", "--out", str(out))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "already holds a data set" in res.stderr and "--force" in res.stderr
    assert (out / "reports.parquet").read_bytes() == before
    res = run("simulate", "--reports", "300", "--seed", "2", "--out", str(out), "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "reports.parquet").read_bytes() != before


def test_simulate_without_out_refuses_the_default_data_folder_when_it_holds_data(tmp_path):
    import os

    data = tmp_path / "data"
    data.mkdir()
    (data / "accounts.csv").write_text("account_id,created_at,role,verified\n")
    res = subprocess.run([DOCKET, "simulate", "--reports", "200"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "DOCKET_DATA_DIR": str(data)})
    assert res.returncode == 2 and "accounts.csv" in res.stderr and "--force" in res.stderr
    assert (data / "accounts.csv").read_text() == "account_id,created_at,role,verified\n"


def test_export_labels_refuses_to_overwrite_without_force(tmp_path):
    import os

    out = tmp_path / "labels"
    out.mkdir()
    (out / "outcomes.csv").write_text("report_id\n")
    env = {**os.environ, "DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"}
    res = subprocess.run([DOCKET, "export-labels", "--out", str(out)], capture_output=True, text=True, timeout=300,
                         env=env)
    assert res.returncode == 2 and "already holds a data set (outcomes.csv)" in res.stderr
    res = subprocess.run([DOCKET, "export-labels", "--out", str(out), "--force"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert res.returncode == 0, res.stderr


def test_help_prints_the_defaults_the_texts_state():
    """Help is plain text: a "[default: ...]" in it is printed, not swallowed as rich markup."""
    res = run("simulate", "--help")
    assert res.returncode == 0 and "[default: DOCKET_DATA_DIR or ./data]" in " ".join(res.stdout.split())
