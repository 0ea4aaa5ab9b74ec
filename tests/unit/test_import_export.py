"""Importing a data set into the store and exporting it back (Market.import_tables, `docket import`,
`docket export`), on a real store: SQLite always, PostgreSQL too when DOCKET_TEST_POSTGRES_URL is set."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from features.contract import TABLES as CONTRACT
from features.history import History
from features.io import load_tables, write_tables
from features.validate import validate_tables
from policy.file import load_policy, load_queue_policy
from serving.enforcement.ledger import Ledger
from serving.market.event_store import Market, resolvable
from serving.market.events import check_batch
from serving.queue.cases import Queue
from serving.queue.intake import Triage
from serving.store import tables as T
from serving.store.db import make_engine, migrate, reading
from simulator.simulate import simulate

DOCKET = str(Path(sys.executable).parent / "docket")
NOW = datetime(2025, 3, 15, tzinfo=UTC)  # after the simulated 60 days
CONTRACT_TABLES = ("accounts", "orders", "reports", "enforcements", "outcomes")


@pytest.fixture(scope="module")
def data() -> dict[str, pd.DataFrame]:
    tables = validate_tables(simulate(1_500, seed=5, days=60))
    return {name: tables[name] for name in CONTRACT_TABLES}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, data) -> Path:
    path = tmp_path_factory.mktemp("import")
    write_tables(data, path)
    return path


def import_into(engine, tables: dict, max_batch: int = 100) -> dict:
    policy, qp = load_policy(), load_queue_policy()
    market = Market(engine, policy)
    triage = Triage(Queue(engine, qp, Ledger(engine, policy)), qp, max_batch)
    steps: list[str] = []
    counts = market.import_tables(tables, actor="tests:import", now=NOW, triage=triage,
                                  history_factory=lambda: History.from_tables(market.tables()[1]),
                                  on_step=steps.append)
    assert steps == ["accounts", "orders", "outcomes", "enforcements", "queue", "reports"]
    return counts


def by_key(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(CONTRACT[name].key, kind="stable").reset_index(drop=True)[list(CONTRACT[name].column_names)]


def assert_same_tables(exported: dict, original: dict) -> None:
    assert set(exported) == set(CONTRACT_TABLES)
    for name in CONTRACT_TABLES:
        pd.testing.assert_frame_equal(by_key(name, exported[name]), by_key(name, original[name]), obj=name)


def row_counts(engine) -> dict[str, int]:
    with reading(engine) as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                for t in (T.market_accounts, T.market_orders, T.market_order_updates, T.market_outcomes,
                          T.violations, T.decisions, T.intake_reports, T.report_scores, T.cases, T.audit_events)}


def test_import_then_export_gives_back_every_table_and_a_second_import_stores_nothing(engine, data):
    counts = import_into(engine, data)
    unresolved = ~data["reports"]["report_id"].isin(data["outcomes"]["report_id"])
    facts = int(data["orders"][["shipped_at", "delivered_at", "cancelled_at", "refunded_at", "fraud_known_at"]]
                .notna().to_numpy().sum())
    assert counts == {
        "accounts": {"stored": len(data["accounts"]), "already_there": 0},
        "orders": {"stored": len(data["orders"]), "already_there": 0},
        "order_updates": {"stored": facts, "already_there": 0},
        "outcomes": {"stored": len(data["outcomes"]), "already_there": 0},
        "enforcements": {"stored": len(data["enforcements"]), "already_there": 0},
        "reports": {"stored": int((~unresolved).sum()), "already_there": 0, "queued": int(unresolved.sum())},
    }
    assert unresolved.sum() > 0 and (~unresolved).sum() > 0
    market = Market(engine, load_policy())
    seq, exported = market.tables()
    assert_same_tables(exported, data)
    assert resolvable(exported)[1] == []  # nothing to leave out of a data set that was valid
    assert seq == sum(c["stored"] + c.get("queued", 0) for c in counts.values())  # one number per row

    audits = Ledger(engine, load_policy()).audit_events()
    imported = [a for a in audits if a["action"] == "events.imported"]
    assert [a["after"]["table"] for a in imported] == ["accounts", "orders", "outcomes", "enforcements", "reports"]
    assert all(a["actor"] == "tests:import" for a in imported)
    assert imported[1]["after"]["order_updates"] == {"stored": facts, "already_there": 0}

    before = row_counts(engine)
    again = import_into(engine, data)
    assert all(c["stored"] == 0 and c.get("queued", 0) == 0 for c in again.values())
    assert {k: c["already_there"] for k, c in again.items()} == {k: c["stored"] + c.get("queued", 0)
                                                                 for k, c in counts.items()}
    assert row_counts(engine) == before and market.last_seq() == seq
    assert_same_tables(market.tables()[1], data)


def test_unresolved_reports_wait_in_open_cases_and_resolved_ones_have_none(engine, data):
    import_into(engine, data)
    reports, outcomes = data["reports"], data["outcomes"]
    unresolved = set(reports.loc[~reports["report_id"].isin(outcomes["report_id"]), "report_id"])
    with reading(engine) as conn:
        links = conn.execute(select(T.case_reports.c.report_id, T.cases.c.case_id, T.cases.c.status)
                             .join(T.cases, T.cases.c.case_id == T.case_reports.c.case_id)).all()
        scored = dict(conn.execute(select(T.report_scores.c.report_id, T.report_scores.c.scored_by)).all())
    assert {r for r, _, _ in links} == unresolved  # resolved reports have no case at all
    open_cases = {case for _, case, status in links if status == "open"}
    assert {r for r, _, status in links if status == "open"} == unresolved  # its own, or the alert it joined
    assert set(scored) == unresolved and set(scored.values()) == {"rules"}  # the service rescores them
    queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy())).queue(NOW, limit=10_000)
    assert {c["case_id"] for c in queue} == open_cases
    assert sum(c["reports"] for c in queue) == len(unresolved)
    assert all(c["scored_by"] == "rules" for c in queue)


def test_the_ledger_holds_the_marketplaces_enforcements(engine, data):
    import_into(engine, data)
    ledger = Ledger(engine, load_policy())
    enforcements = data["enforcements"]
    suspended = enforcements[enforcements["action"] == "suspension"].iloc[0]
    during = suspended["decided_at"].to_pydatetime() + timedelta(minutes=1)
    health = ledger.health(suspended["account_id"], during)
    assert health["account_health"] != "excellent"
    assert suspended["violation_id"] in health["counting_violations"]
    assert any(p["type"] == "suspension" for p in health["active_penalties"])
    role = data["accounts"].set_index("account_id").loc[suspended["account_id"], "role"]
    assert health["role"] == role
    with reading(engine) as conn:
        policies = set(conn.execute(select(T.decisions.c.policy_version)).scalars())
    assert policies == {"imported"}  # the marketplace's own decisions, not re-decided by the mapper


def test_an_import_into_a_store_that_already_holds_part_of_it_stores_only_the_rest(engine, data):
    market = Market(engine, load_policy())
    sent = data["accounts"].head(10)
    body = {"accounts": [{**r, "created_at": r["created_at"].isoformat()} for r in sent.to_dict("records")]}
    market.ingest(check_batch(body, 1_000), actor="api", now=NOW)
    counts = import_into(engine, data)
    assert counts["accounts"] == {"stored": len(data["accounts"]) - 10, "already_there": 10}
    assert_same_tables(market.tables()[1], data)


def test_export_leaves_out_rows_whose_references_do_not_resolve(engine, data):
    import_into(engine, data)
    market = Market(engine, load_policy())
    known = data["accounts"]["account_id"].iloc[0]
    market.ingest(check_batch({
        "orders": [{"order_id": "o-stray", "buyer_id": "a-never-sent", "seller_id": known, "show_id": None,
                    "amount": 5.0, "created_at": "2025-02-01T00:00:00Z", "ship_by": "2025-02-03T00:00:00Z"}],
        "outcomes": [{"report_id": "r-never-sent", "valid": False, "severity": None, "fraud_confirmed": False,
                      "resolved_at": "2025-02-01T00:00:00Z"}],
    }, 100), actor="api", now=NOW)
    tables, dropped = resolvable(market.tables()[1])
    assert dropped == [("orders", 1, "buyer_id names an account never sent"),
                       ("outcomes", 1, "report_id names a report never sent (or left out)")]
    validate_tables(tables, require=["accounts"])
    assert_same_tables(tables, data)


def test_resolvable_leaves_out_what_a_data_set_may_not_hold_and_says_why(data):
    tables = {name: frame.copy() for name, frame in data.items()}
    report = data["reports"][data["reports"]["order_id"].notna()].iloc[0]
    order = data["orders"].set_index("order_id").loc[report["order_id"]]
    stray = pd.DataFrame([
        {**report, "report_id": "x-subject", "subject_id": "a-never-sent", "order_id": None},
        {**report, "report_id": "x-reporter", "reporter_id": "a-never-sent", "order_id": None},
        {**report, "report_id": "x-order", "order_id": "o-never-sent"},
        {**report, "report_id": "x-early", "created_at": order["created_at"] - pd.Timedelta(seconds=1)},
    ])
    tables["reports"] = pd.concat([tables["reports"], stray], ignore_index=True)
    outcome = data["outcomes"].iloc[0]
    filed = data["reports"].set_index("report_id").loc[outcome["report_id"], "created_at"]
    tables["outcomes"] = pd.concat([data["outcomes"].iloc[1:], pd.DataFrame([
        {**outcome, "report_id": "x-order"},  # its report is left out, so it is too
        {**outcome, "resolved_at": filed - pd.Timedelta(seconds=1)},
    ])], ignore_index=True)
    enforcement = data["enforcements"].iloc[0]
    tables["enforcements"] = pd.concat([data["enforcements"], pd.DataFrame([
        {**enforcement, "violation_id": "x-v", "account_id": "a-never-sent"}])], ignore_index=True)
    kept, dropped = resolvable(tables)
    assert dropped == [
        ("enforcements", 1, "account_id names an account never sent"),
        ("reports", 1, "subject_id names an account never sent"),
        ("reports", 1, "reporter_id names an account never sent"),
        ("reports", 1, "order_id names an order never sent (or left out)"),
        ("reports", 1, "filed before its order was placed"),
        ("outcomes", 1, "report_id names a report never sent (or left out)"),
        ("outcomes", 1, "resolved before its report was filed"),
    ]
    kept = validate_tables(kept)
    for name in ("accounts", "orders", "reports", "enforcements"):
        pd.testing.assert_frame_equal(by_key(name, kept[name]), by_key(name, data[name]), obj=name)
    pd.testing.assert_frame_equal(by_key("outcomes", kept["outcomes"]), by_key("outcomes", data["outcomes"].iloc[1:]))


def test_docket_export_of_an_empty_store_writes_empty_tables_that_load(tmp_path):
    res = docket("export", "--out", str(tmp_path / "out"), env={"DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}"})
    assert res.returncode == 0, res.stderr
    assert all(len(frame) == 0 for frame in load_tables(tmp_path / "out").values())


def docket(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKET, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "COLUMNS": "300", **env})


def test_docket_import_then_export_round_trips_and_bad_input_exits_2(tmp_path, data_dir, data):
    env = {"DOCKET_DATABASE_URL": f"sqlite:///{tmp_path / 'docket.db'}"}
    res = docket("import", "--data", str(data_dir), env=env)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    summary = res.stderr.strip().splitlines()[-1]
    assert f"stored {len(data['accounts']):,} accounts" in summary and "unresolved reports queued" in summary

    res = docket("import", "--data", str(data_dir), env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("already imported") and f"{len(data['reports']):,} reports" in res.stderr

    res = docket("export", "--out", str(tmp_path / "out"), env=env)
    assert res.returncode == 0, res.stderr
    assert "left out" not in res.stderr and "wrote" in res.stderr
    assert_same_tables(load_tables(tmp_path / "out"), data)

    other = tmp_path / "other"
    other.mkdir()
    (other / "truth_orders.csv").write_text("order_id,p_fraud\n")
    res = docket("export", "--out", str(other), env=env)
    assert res.returncode == 2 and "already holds a data set (truth_orders.csv)" in res.stderr
    res = docket("export", "--out", str(other), "--force", env=env)
    assert res.returncode == 0 and "also holds truth_orders.csv from before" in res.stderr

    res = docket("import", "--data", str(tmp_path / "nowhere"), env=env)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "nowhere" in res.stderr

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "accounts.csv").write_text("account_id,created_at,role,verified\na1,2025-01-01T00:00:00Z,admin,true\n")
    res = docket("import", "--data", str(bad), env=env)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "accounts.role" in res.stderr and "admin" in res.stderr


def test_docket_import_says_what_is_wrong_with_the_store(tmp_path, data_dir):
    res = docket("import", "--data", str(data_dir), env={"DOCKET_DATABASE_URL": "mysql://nobody@nowhere/x"})
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unsupported database" in res.stderr


def test_an_already_imported_check_is_not_fooled_by_a_partial_store(tmp_path, data_dir, data):
    """The quick check before loading counts and looks up every key: one account missing and it imports."""
    url = f"sqlite:///{tmp_path / 'docket.db'}"
    engine = make_engine(url)
    migrate(engine)
    partial = dict(data)
    partial["accounts"] = data["accounts"].iloc[1:]
    partial["orders"] = data["orders"][data["orders"]["buyer_id"].isin(partial["accounts"]["account_id"])
                                       & data["orders"]["seller_id"].isin(partial["accounts"]["account_id"])]
    partial = {k: v for k, v in resolvable(partial)[0].items()}
    import_into(engine, partial)
    res = docket("import", "--data", str(data_dir), env={"DOCKET_DATABASE_URL": url})
    assert res.returncode == 0, res.stderr
    assert "already imported" not in res.stderr
    assert_same_tables(Market(engine, load_policy()).tables()[1], data)


def test_a_burst_of_resolved_reports_before_an_unresolved_one_opens_no_alert(engine):
    """Spike detection at intake reads the stored reports about each subject: a burst that was resolved long
    ago (no score, no case) must not become an alert case (whose priority and view need every report's score)."""
    at = pd.Timestamp("2025-02-01T12:00:00Z")
    accounts = pd.DataFrame({"account_id": ["s"] + [f"b{i}" for i in range(12)],
                             "created_at": pd.Timestamp("2024-01-01T00:00:00Z"),
                             "role": ["seller"] + ["buyer"] * 12, "verified": True})
    reports = pd.DataFrame({
        "report_id": [f"r{i:02d}" for i in range(13)],
        "created_at": [at + pd.Timedelta(minutes=2 * i) for i in range(12)] + [at + pd.Timedelta(hours=3)],
        "reporter_id": [f"b{i}" for i in range(12)] + ["b0"], "reporter_type": "buyer", "channel": "profile",
        "subject_id": "s", "show_id": None, "order_id": None, "category": "harassment",
        "description": "rude in chat"})
    outcomes = pd.DataFrame({"report_id": [f"r{i:02d}" for i in range(12)], "valid": True, "severity": "low",
                             "fraud_confirmed": False, "resolved_at": at + pd.Timedelta(hours=2)})
    tables = validate_tables({"accounts": accounts, "reports": reports, "outcomes": outcomes}, require=["accounts"])
    counts = import_into(engine, tables)
    assert counts["reports"] == {"stored": 12, "already_there": 0, "queued": 1}
    queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
    assert [c["case_id"] for c in queue.queue(NOW)] == ["case-r12"]
    assert queue.alerts() == []
    assert [r["report_id"] for r in queue.case("case-r12", NOW, "investigator")["reports"]] == ["r12"]
