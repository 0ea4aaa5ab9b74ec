"""The enforcement ledger on a real store: SQLite always, PostgreSQL when DOCKET_TEST_POSTGRES_URL is set.

Decisions come from the real penalty mapper and policy file, so these tests also
pin the ledger's contract with them: the mapper sees the stored record (appeals,
earlier decisions), and nothing stored is ever changed.
"""
from __future__ import annotations

import re

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from features.vocabulary import family_of
from policy.file import load_policy
from policy.penalty import Account, Policy, Violation
from serving.enforcement.ledger import Ledger, LedgerError, NotFoundError, Recorded
from serving.store.conflicts import ConflictError
from serving.store.db import StoreError, make_engine, migrate

PG_URL = os.environ.get("DOCKET_TEST_POSTGRES_URL")
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SELLER = Account("seller-1", "seller")
BUYER = Account("buyer-1", "buyer")
HISTORY_TABLES = {"accounts": "account_id", "violations": "violation_id", "decisions": "id",
                  "violation_events": "id", "audit_events": "id"}


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


@pytest.fixture
def ledger(engine, policy) -> Ledger:
    return Ledger(engine, policy)


def violation(category: str, severity: str, occurred: datetime, stage: str = "confirmed") -> Violation:
    return Violation(family=family_of(category), category=category, severity=severity, occurred_at=occurred,
                     stage=stage)


def record(ledger: Ledger, violation_id: str, account: Account, category: str, severity: str, n: float,
           **kwargs) -> Recorded:
    """Record a violation that occurred on day n, decided an hour later."""
    return ledger.record_violation(violation_id, account, violation(category, severity, day(n)), actor="moderator-7",
                                   as_of=day(n) + timedelta(hours=1), **kwargs)


def rows(engine: Engine) -> dict[str, list[tuple]]:
    """Every row of every history table, in key order, exactly as the driver returns it."""
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY {key}")]
                for t, key in HISTORY_TABLES.items()}


def counts(engine: Engine) -> dict[str, int]:
    return {t: len(r) for t, r in rows(engine).items()}


def actions(decision) -> list[tuple]:
    return [(a.type, a.days) for a in decision.actions]


def penalties(view: dict) -> set[tuple]:
    return {(p["violation_id"], p["type"], p["ends_at"]) for p in view["active_penalties"]}


# ---------------------------------------------------------------------------
# The storage edge.

def test_migrate_again_on_a_migrated_store_changes_nothing(engine):
    migrate(engine)
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [_head()]
    assert counts(engine) == dict.fromkeys(HISTORY_TABLES, 0)


def test_the_migrations_build_exactly_the_schema_the_code_declares(engine):
    """Alembic's own comparison of the migrated store with serving/store/tables.py: every column, its nullability
    (migration 0009 let an order go without a ship_by), every index. The one difference it reports is how the
    two unique `seq` columns are spelled: a unique index in migration 0003, `unique=True` in the table."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from serving.store import tables as T

    migrate(engine)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), T.metadata)
    spelled_differently = {("remove_index", f"ix_{t}_seq") for t in ("intake_reports", "violations")} | {
        ("add_constraint", t) for t in ("intake_reports", "violations")}
    seen = {(d[0], d[1].name if d[0] == "remove_index" else d[1].table.name) for d in diffs}
    assert seen == spelled_differently, diffs


@pytest.mark.parametrize("url", ["postgresql://u@db.example/docket", "postgres://u@db.example/docket",
                                 "postgresql+psycopg2://u@db.example/docket"])
def test_postgres_urls_always_use_psycopg3(url):
    assert make_engine(url).url.drivername == "postgresql+psycopg"


def test_unsupported_database_url_is_a_store_error():
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        make_engine("mysql://u:secret@db.example/docket")


def test_store_enforces_foreign_keys(engine):
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("INSERT INTO violation_events (violation_id, at, kind, value, actor) "
                          "VALUES ('no-such-violation', :at, 'appeal', 'upheld', 'a')"), {"at": T0})


def test_autocommit_connection_runs_outside_a_transaction(engine):
    """Statements that refuse to run in a transaction (VACUUM, CREATE DATABASE) must be possible."""
    statement = "VACUUM" if engine.dialect.name == "sqlite" else "VACUUM accounts"
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(statement)


def test_database_refuses_update_and_delete_on_history_tables(engine, ledger):
    record(ledger, "v1", SELLER, "violent_content", "low", 0)
    for statement in ("UPDATE decisions SET points = 99", "DELETE FROM audit_events",
                      "UPDATE violations SET severity = 'critical'", "DELETE FROM accounts"):
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert counts(engine) == {"accounts": 1, "violations": 1, "decisions": 1, "violation_events": 0,
                              "audit_events": 1}


# ---------------------------------------------------------------------------
# Recording.

def test_record_stores_violation_decision_and_audit_event(engine, ledger, policy):
    recorded = record(ledger, "v1", SELLER, "counterfeit", "medium", 0, source_report_id="r-9",
                      model_versions={"docket-severity": "3", "docket-fraud": "5"})
    assert recorded.created and recorded.decision.policy_version == policy.version
    assert counts(engine) == {"accounts": 1, "violations": 1, "decisions": 1, "violation_events": 0,
                              "audit_events": 1}
    stored = ledger.health("seller-1", day(1))["history"][0]
    assert stored["source_report_id"] == "r-9"
    assert stored["model_versions"] == {"docket-severity": "3", "docket-fraud": "5"}
    assert stored["recorded_by"] == "moderator-7"
    assert [d["cause"] for d in stored["decisions"]] == ["recorded"]
    assert stored["decisions"][0]["actions"] == recorded.decision.to_dict()["actions"]
    assert stored["decisions"][0]["policy_version"] == policy.version
    (audit,) = ledger.audit_events("v1")
    assert (audit["action"], audit["entity"], audit["actor"]) == ("violation.recorded", "violation", "moderator-7")
    assert audit["before"] is None and audit["after"]["decision"] == recorded.decision.to_dict()


def test_retry_with_the_same_id_records_nothing_and_returns_the_stored_decision(engine, ledger):
    first = record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    before = rows(engine)
    retry = record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    assert (retry.created, retry.decision) == (False, first.decision)
    # by another actor, and without stating as_of (the caller's clock then is no difference): still a retry
    again = ledger.record_violation("v1", SELLER, violation("counterfeit", "medium", day(0)), actor="other",
                                    as_of=day(3), as_of_stated=False)
    assert (again.created, again.decision) == (False, first.decision)
    assert rows(engine) == before


def test_reusing_an_id_for_a_different_violation_is_a_conflict_naming_the_fields(engine, ledger):
    """Issue 15, defect 8: other content was a 422, and another as_of, source report or model versions a silent
    200 (first wins). Each is now a ConflictError (409) naming what differs; nothing is stored."""
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    before = rows(engine)
    with pytest.raises(ConflictError, match="already recorded with other content") as caught:
        record(ledger, "v1", SELLER, "counterfeit", "high", 0)
    assert [c["field"] for c in caught.value.body()["detail"]] == ["severity"]
    for change, field in ((dict(as_of=day(3)), "as_of"), (dict(source_report_id="r-9"), "source_report_id"),
                          (dict(model_versions={"docket-severity": "2"}), "model_versions")):
        with pytest.raises(ConflictError) as caught:
            ledger.record_violation("v1", SELLER, violation("counterfeit", "medium", day(0)), actor="moderator-7",
                                    **{"as_of": day(0) + timedelta(hours=1), **change})
        assert [c["field"] for c in caught.value.body()["detail"]] == [field]
    assert rows(engine) == before


def test_eight_threads_recording_one_id_store_exactly_one_violation(engine, ledger):
    start = threading.Barrier(8)

    def attempt(_: int) -> Recorded:
        start.wait()
        return record(ledger, "v1", SELLER, "shill_bidding", "high", 0)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sum(r.created for r in results) == 1
    assert len({r.decision for r in results}) == 1
    assert counts(engine) == {"accounts": 1, "violations": 1, "decisions": 1, "violation_events": 0,
                              "audit_events": 1}


def test_concurrent_violations_of_one_account_each_see_the_ones_recorded_before(engine, ledger):
    """Writes per account are serialised: eight low violations at once reach 1, 2, ..., 8 points, no repeats."""
    start = threading.Barrier(8)

    def attempt(i: int) -> Recorded:
        start.wait()
        return record(ledger, f"v{i}", SELLER, "violent_content", "low", 0)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sorted(r.decision.points for r in results) == list(range(1, 9))


def test_one_id_raced_for_two_accounts_is_recorded_once_and_the_other_refused(engine, ledger):
    start = threading.Barrier(2)

    def attempt(account: Account):
        start.wait()
        try:
            return record(ledger, "v1", account, "violent_content", "low", 0)
        except ConflictError as err:
            return err

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(attempt, [SELLER, Account("seller-2", "seller")]))
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Recorded"]
    assert counts(engine)["violations"] == 1


def test_four_low_behavioral_violations_of_a_seller_end_in_a_suspension(ledger):
    rungs = [record(ledger, f"v{i}", SELLER, "violent_content", "low", 10 * i).decision for i in range(4)]
    assert [d.rung for d in rungs] == ["warning", "warning", "warning", "suspension_2d"]
    assert [d.points for d in rungs] == [1, 2, 3, 4]
    assert ("suspension", 2) in actions(rungs[-1])


def test_account_recorded_as_a_seller_cannot_be_recorded_as_a_buyer(engine, ledger):
    record(ledger, "v1", SELLER, "violent_content", "low", 0)
    before = rows(engine)
    with pytest.raises(LedgerError, match="recorded as a seller, not a buyer"):
        record(ledger, "v2", Account("seller-1", "buyer"), "violent_content", "low", 1)
    assert rows(engine) == before


@pytest.mark.parametrize("bad, message", [
    (violation("counterfeit", "high", day(0), stage="under_investigation"), "only confirmed"),
    (violation("counterfeit", "high", day(2)), "after as_of"),
    (violation("counterfeit", "high", datetime(2025, 3, 1)), "timezone-aware"),
    (Violation("behavioral", "counterfeit", "high", day(0)), "not in family"),
], ids=["under_investigation", "occurs_after_as_of", "naive_time", "wrong_family"])
def test_violation_that_would_make_the_record_wrong_is_refused(engine, ledger, bad, message):
    with pytest.raises(LedgerError, match=message):
        ledger.record_violation("v1", SELLER, bad, actor="moderator-7", as_of=day(1))
    assert counts(engine) == dict.fromkeys(HISTORY_TABLES, 0)


def test_times_in_any_zone_are_stored_and_returned_as_utc(ledger):
    cest = timezone(timedelta(hours=2))
    occurred = datetime(2025, 3, 1, 14, 30, tzinfo=cest)
    ledger.record_violation("v1", SELLER, violation("spam", "low", occurred), actor="m", as_of=day(1))
    stored = ledger.health("seller-1", day(2))["history"][0]
    assert stored["occurred_at"] == "2025-03-01T12:30:00+00:00"
    assert datetime.fromisoformat(stored["occurred_at"]) == occurred


# ---------------------------------------------------------------------------
# Appeals.

def test_overturned_appeal_stops_counting_lifts_penalties_and_is_audited(ledger):
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    assert {p["type"] for p in ledger.health("seller-1", day(1))["active_penalties"]} == {"suspension",
                                                                                          "revoke_selling"}
    view = ledger.appeal("v1", "overturned", actor="appeals-2", why="wrong listing", at=day(2))
    assert view["counting_violations"] == [] and view["active_penalties"] == []
    assert view["account_health"] == "excellent"
    audit = ledger.audit_events("v1")[-1]
    assert (audit["action"], audit["before"], audit["after"], audit["why"]) == (
        "violation.appealed", {"appeal": None}, {"appeal": "overturned"}, "wrong listing")
    # The next decision is taken on the stored record: no suspension on it any more, no floor.
    assert record(ledger, "v2", SELLER, "counterfeit", "low", 3).decision.rung == "warning"


def test_upheld_appeal_keeps_the_violation_counting_and_its_penalties(ledger):
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    before = ledger.health("seller-1", day(2))
    after = ledger.appeal("v1", "upheld", actor="appeals-2", why="evidence holds", at=day(2))
    assert after["counting_violations"] == ["v1"]
    assert after["active_penalties"] == before["active_penalties"]
    assert record(ledger, "v2", SELLER, "counterfeit", "low", 3).decision.rung == "suspension_7d"  # floor


def test_a_second_appeal_is_a_conflict_naming_the_first_and_changes_nothing(engine, ledger):
    """Issue 15, defect 8: three appeals (overturned, overturned, upheld) were all accepted, the latest winning."""
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    ledger.appeal("v1", "overturned", actor="appeals-2", why="first look", at=day(1))
    before = rows(engine)
    with pytest.raises(ConflictError, match=re.escape(
            f"violation v1 was already appealed: overturned at {day(1).isoformat()} by appeals-2")) as caught:
        ledger.appeal("v1", "upheld", actor="appeals-3", why="second look", at=day(2))
    assert [c["field"] for c in caught.value.body()["detail"]] == ["outcome", "actor", "why", "at"]
    with pytest.raises(ConflictError):  # the same outcome by someone else is a second appeal too
        ledger.appeal("v1", "overturned", actor="appeals-3", why="first look", at=day(1))
    assert rows(engine) == before
    assert ledger.health("seller-1", day(3))["counting_violations"] == []


def test_the_same_appeal_sent_again_records_nothing_and_answers_the_view(engine, ledger):
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    first = ledger.appeal("v1", "overturned", actor="appeals-2", why="first look", at=day(1))
    before = rows(engine)
    assert ledger.appeal("v1", "overturned", actor="appeals-2", why="first look", at=day(1)) == first
    # at not stated (the caller's clock): still the same appeal
    assert ledger.appeal("v1", "overturned", actor="appeals-2", why="first look", at=day(5), at_stated=False) == first
    assert rows(engine) == before


def test_appeal_with_an_unknown_outcome_is_refused(ledger):
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)
    with pytest.raises(LedgerError, match="unknown appeal outcome"):
        ledger.appeal("v1", "withdrawn", actor="a", why=None, at=day(1))


# ---------------------------------------------------------------------------
# Remedial steps.

def test_remedial_lowers_a_sellers_logistics_sentence_by_appending_a_decision(engine, ledger):
    for i in range(3):
        record(ledger, f"v{i}", SELLER, "shipping_delay", "medium", i)
    first_decision = rows(engine)["decisions"][-1]
    before = ledger.health("seller-1", day(4))
    assert {(p["violation_id"], p["type"]) for p in before["active_penalties"] if p["violation_id"] == "v2"} == {
        ("v2", "lose_early_payout"), ("v2", "increased_commission")}

    view = ledger.complete_remedial("v2", completed_at=day(4), actor="seller-1", why="passed shipping quiz")
    decisions = view["history"][2]["decisions"]
    assert [(d["cause"], d["rung"]) for d in decisions] == [("recorded", "payout_and_commission"),
                                                            ("remedial", "lose_early_payout")]
    assert rows(engine)["decisions"][2] == first_decision  # the original decision is untouched
    # Commission lifted; the payout penalty keeps its original end: a remedial never restarts a sentence.
    assert {p for p in penalties(view) if p[0] == "v2"} == {p for p in penalties(before)
                                                            if p[0] == "v2" and p[1] == "lose_early_payout"}
    assert ledger.audit_events("v2")[-1]["action"] == "violation.remedial_completed"


def test_remedial_does_not_change_a_behavioral_sentence(engine, ledger):
    for i in range(4):
        record(ledger, f"v{i}", SELLER, "violent_content", "low", i)
    before = ledger.health("seller-1", day(3.5))
    view = ledger.complete_remedial("v3", completed_at=day(3.5), actor="seller-1", why="passed quiz")
    old, new = view["history"][3]["decisions"]
    assert (old["cause"], new["cause"]) == ("recorded", "remedial")
    assert new["actions"] == old["actions"] and new["rung"] == old["rung"] == "suspension_2d"
    assert view["active_penalties"] == before["active_penalties"]


def test_remedial_step_raced_by_four_threads_is_recorded_once(engine, ledger):
    record(ledger, "v1", SELLER, "shipping_delay", "high", 0)
    start = threading.Barrier(4)

    def attempt(i: int):
        start.wait()
        try:
            return ledger.complete_remedial("v1", completed_at=day(1 + i / 10), actor="seller-1", why="quiz")
        except ConflictError as err:
            return err

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, range(4)))
    assert sum(isinstance(r, dict) for r in results) == 1
    assert counts(engine)["violation_events"] == 1 and counts(engine)["decisions"] == 2


def test_remedial_step_completed_twice_is_a_conflict_and_the_same_step_again_a_retry(engine, ledger):
    record(ledger, "v1", SELLER, "shipping_delay", "high", 0)
    first = ledger.complete_remedial("v1", completed_at=day(1), actor="seller-1", why="quiz")
    before = rows(engine)
    with pytest.raises(ConflictError, match="already completed"):
        ledger.complete_remedial("v1", completed_at=day(2), actor="seller-1", why="quiz again")
    assert ledger.complete_remedial("v1", completed_at=day(1), actor="seller-1", why="quiz") == first
    assert rows(engine) == before


# ---------------------------------------------------------------------------
# The health view.

def test_health_lists_penalties_in_force_with_end_times(ledger):
    record(ledger, "v1", SELLER, "counterfeit", "medium", 0)  # suspension 7 days + revoke_selling
    start = day(0) + timedelta(hours=1)
    view = ledger.health("seller-1", day(1))
    assert penalties(view) == {("v1", "suspension", (start + timedelta(days=7)).isoformat()),
                               ("v1", "revoke_selling", None)}
    assert all(p["started_at"] == start.isoformat() for p in view["active_penalties"])
    assert penalties(ledger.health("seller-1", day(8))) == {("v1", "revoke_selling", None)}


def test_a_low_violation_stops_counting_after_180_days(ledger, policy):
    record(ledger, "v1", BUYER, "spam", "low", 0)
    recorded = day(0) + timedelta(hours=1)
    assert ledger.health("buyer-1", recorded + timedelta(days=179))["counting_violations"] == ["v1"]
    expired = ledger.health("buyer-1", recorded + timedelta(days=policy.expiry_days))
    assert expired["counting_violations"] == [] and expired["account_health"] == "excellent"


def test_buyer_gets_no_seller_only_penalty_where_a_seller_would(ledger):
    record(ledger, "v1", SELLER, "spam", "low", 0)
    record(ledger, "v2", BUYER, "spam", "low", 0)
    ends = (day(0) + timedelta(hours=1, days=14)).isoformat()
    assert penalties(ledger.health("seller-1", day(1))) == {("v1", "reduced_discoverability", ends)}
    assert penalties(ledger.health("buyer-1", day(1))) == set()


def test_unknown_violation_or_account_is_not_found(ledger):
    with pytest.raises(NotFoundError):
        ledger.health("nobody", day(0))
    with pytest.raises(NotFoundError):
        ledger.appeal("nothing", "upheld", actor="a", why=None, at=day(0))
    with pytest.raises(NotFoundError):
        ledger.complete_remedial("nothing", completed_at=day(0), actor="a", why=None)


# ---------------------------------------------------------------------------
# Append-only.

def test_history_tables_only_grow(engine, ledger):
    operations = [
        lambda: record(ledger, "v1", SELLER, "shipping_delay", "high", 0),
        lambda: record(ledger, "v1", SELLER, "shipping_delay", "high", 0),  # retry
        lambda: record(ledger, "v2", SELLER, "counterfeit", "medium", 1),
        lambda: ledger.appeal("v2", "overturned", actor="a", why="x", at=day(2)),
        lambda: ledger.appeal("v2", "overturned", actor="a", why="x", at=day(2)),  # retry
        lambda: ledger.complete_remedial("v1", completed_at=day(4), actor="s", why="quiz"),
        lambda: ledger.health("seller-1", day(5)),
        lambda: record(ledger, "v3", SELLER, "harassment", "critical", 6),
    ]
    for operation in operations:
        before = rows(engine)
        operation()
        after = rows(engine)
        for table, old in before.items():
            assert after[table][:len(old)] == old, f"{table}: an earlier row changed"
    assert counts(engine) == {"accounts": 1, "violations": 3, "decisions": 4, "violation_events": 2,
                              "audit_events": 5}


def _head() -> str:
    """The newest migration revision, read from the migration scripts themselves."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from serving.store.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()
