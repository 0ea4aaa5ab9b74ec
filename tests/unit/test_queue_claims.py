"""Claiming a named case, releasing and resolving in the store (SQLite, and PostgreSQL when configured)."""
from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from policy.file import load_policy, load_queue_policy
from serving.enforcement.ledger import Ledger, NotFoundError
from serving.queue.cases import CaseStateError, Queue, Score
from serving.store import tables as T
from serving.store.db import reading

T0 = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)


def report(i: int) -> dict:
    return {"report_id": f"r{i}", "created_at": pd.Timestamp(T0 + timedelta(minutes=i)), "reporter_id": f"a{i}",
            "reporter_type": "buyer", "channel": "livestream", "subject_id": f"s{i}", "show_id": None,
            "order_id": None, "category": "harassment", "description": ""}


@pytest.fixture
def queue(engine) -> Queue:
    q = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
    q.intake(pd.DataFrame([report(i) for i in range(3)]), [Score("rules", 10.0 + i) for i in range(3)],
             actor="t", now=NOW)
    return q


def audit(queue: Queue, case_id: str) -> list[tuple[str, str]]:
    with reading(queue.engine) as conn:
        return [(r.action, r.actor) for r in conn.execute(
            select(T.audit_events).where(T.audit_events.c.entity_id == case_id).order_by(T.audit_events.c.id))]


def test_claiming_a_named_case_takes_that_case_not_the_best_one(queue):
    assert queue.claim("inv", NOW, case_id="case-r0")["case_id"] == "case-r0"  # r2 ranks first
    assert queue.claim("inv2", NOW)["case_id"] == "case-r2"


def test_a_case_someone_holds_is_refused_naming_the_holder_and_until_when(queue):
    held = queue.claim("inv", NOW, case_id="case-r1")
    message = f"case 'case-r1' is claimed by inv until {held['claim_expires_at']}"
    with pytest.raises(CaseStateError, match=re.escape(message)):
        queue.claim("inv2", NOW, case_id="case-r1")


def test_claiming_a_case_you_hold_again_answers_it_unchanged(queue):
    first = queue.claim("inv", NOW, case_id="case-r1")
    again = queue.claim("inv", NOW + timedelta(minutes=1), case_id="case-r1")
    assert again["claim_expires_at"] == first["claim_expires_at"] and again["case_id"] == "case-r1"
    assert audit(queue, "case-r1").count(("claim", "inv")) == 1


def test_an_unknown_case_is_not_found(queue):
    for act in (lambda: queue.claim("inv", NOW, case_id="nope"), lambda: queue.release("nope", "inv", NOW),
                lambda: queue.resolve("nope", valid=False, severity=None, fraud_confirmed=False, notes=None,
                                      actor="inv", role=None, now=NOW)):
        with pytest.raises(NotFoundError):
            act()


def test_the_holder_releases_a_case_and_someone_else_can_claim_it(queue):
    queue.claim("inv", NOW, case_id="case-r1")
    with pytest.raises(CaseStateError, match="claimed by inv until .*only the investigator holding it"):
        queue.release("case-r1", "inv2", NOW)
    assert queue.release("case-r1", "inv", NOW) == {"case_id": "case-r1", "status": "open", "released_by": "inv"}
    assert ("release", "inv") in audit(queue, "case-r1")
    assert "case-r1" in [c["case_id"] for c in queue.queue(NOW)]
    with pytest.raises(CaseStateError, match="case 'case-r1' is open: only"):
        queue.release("case-r1", "inv", NOW)
    assert queue.claim("inv2", NOW, case_id="case-r1")["claimed_by"] == "inv2"


def test_resolving_says_what_happened_to_the_case(queue):
    with pytest.raises(CaseStateError, match="is open: claim it before resolving"):
        queue.resolve("case-r1", valid=False, severity=None, fraud_confirmed=False, notes=None, actor="inv",
                      role=None, now=NOW)
    queue.claim("inv", NOW, case_id="case-r1")
    with pytest.raises(CaseStateError, match="claimed by inv until .*: only the investigator holding it"):
        queue.resolve("case-r1", valid=False, severity=None, fraud_confirmed=False, notes=None, actor="inv2",
                      role=None, now=NOW)
    done = queue.resolve("case-r1", valid=True, severity="medium", fraud_confirmed=False, notes=None, actor="inv",
                         role="seller", now=NOW)
    assert done["violation_id"] == "v-case-r1" and done["violation"]["actions"] is not None
    later = NOW + timedelta(minutes=5)
    again = queue.resolve("case-r1", valid=True, severity="medium", fraud_confirmed=False, notes=None, actor="inv",
                          role="seller", now=later)  # the same resolution resent: the first answer, nothing new
    assert again == done
    message = f"case 'case-r1' is already resolved (by inv at {NOW.isoformat()})"
    for act in (lambda: queue.resolve("case-r1", valid=True, severity="high", fraud_confirmed=False, notes=None,
                                      actor="inv", role="seller", now=later),
                lambda: queue.resolve("case-r1", valid=True, severity="medium", fraud_confirmed=False, notes=None,
                                      actor="inv2", role="seller", now=later),
                lambda: queue.claim("inv2", NOW, case_id="case-r1"), lambda: queue.release("case-r1", "inv", NOW)):
        with pytest.raises(CaseStateError, match=re.escape(message)):
            act()


def test_a_resolve_cut_short_before_its_violation_records_it_when_resent(queue, monkeypatch):
    queue.claim("inv", NOW, case_id="case-r1")
    record = queue.ledger.record_violation

    def crash(*args, **kwargs):
        raise ConnectionError("the worker died here")

    monkeypatch.setattr(queue.ledger, "record_violation", crash)
    with pytest.raises(ConnectionError):
        queue.resolve("case-r1", valid=True, severity="medium", fraud_confirmed=False, notes="seen", actor="inv",
                      role="seller", now=NOW)
    assert queue.ledger.first_decision("v-case-r1") is None
    monkeypatch.setattr(queue.ledger, "record_violation", record)
    resent = queue.resolve("case-r1", valid=True, severity="medium", fraud_confirmed=False, notes="seen",
                           actor="inv", role="seller", now=NOW + timedelta(hours=1))
    assert resent["violation_id"] == "v-case-r1" and resent["violation"] == queue.ledger.first_decision(
        "v-case-r1").to_dict()
    recorded = [e for e in queue.ledger.audit_events("v-case-r1") if e["action"] == "violation.recorded"]
    assert [e["at"] for e in recorded] == [NOW.isoformat()]  # decided as of the resolution, not of the resend


def test_an_invalid_outcome_names_no_violation(queue):
    queue.claim("inv", NOW, case_id="case-r0")
    done = queue.resolve("case-r0", valid=False, severity=None, fraud_confirmed=False, notes=None, actor="inv",
                         role=None, now=NOW)
    assert done["violation_id"] is None and done["violation"] is None


def test_concurrent_claims_of_one_named_case_hand_it_to_exactly_one(queue):
    results: list[str] = []

    def claim(who: str) -> None:
        try:
            results.append(queue.claim(who, NOW, case_id="case-r1")["claimed_by"])
        except CaseStateError:
            results.append("refused")

    threads = [threading.Thread(target=claim, args=(f"inv{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and results.count("refused") == 7, results


def test_concurrent_claims_never_answer_empty_while_cases_are_open_nor_share_a_case(engine):
    """Issue 15, defect 6: a claim tried only the top 50 of a ranking read before others took them, so 7 of
    128 concurrent claims answered "empty" with 2,000 cases open. Now each hands out a case while one is open."""
    queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
    n_cases, n_threads, per_thread = 300, 16, 12  # 192 claims, more cases than claims, all racing for the top
    queue.intake(pd.DataFrame([report(i) for i in range(n_cases)]), [Score("rules", 50.0) for _ in range(n_cases)],
                 actor="t", now=NOW)
    got: list[str | None] = []
    start = threading.Barrier(n_threads)

    def claimer(who: str) -> None:
        start.wait()
        for _ in range(per_thread):
            case = queue.claim(who, NOW)
            got.append(case["case_id"] if case else None)

    threads = [threading.Thread(target=claimer, args=(f"inv{i}",)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in got, f"{got.count(None)} claims answered empty with cases open"
    assert len(got) == n_threads * per_thread == len(set(got))


def test_claims_hand_out_every_open_case_then_answer_empty(queue):
    taken = {queue.claim(f"inv{i}", NOW)["case_id"] for i in range(3)}
    assert taken == {"case-r0", "case-r1", "case-r2"} and queue.claim("inv9", NOW) is None
