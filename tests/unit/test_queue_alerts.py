"""Alert cases in the store: a report arriving after its alert case was resolved stays in the queue."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from policy.file import load_policy, load_queue_policy
from policy.spikes import Alert
from serving.enforcement.ledger import Ledger
from serving.queue.cases import Queue, Score
from serving.store.db import make_engine, migrate

T0 = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)


def report(i: int) -> dict:
    return {"report_id": f"r{i}", "created_at": pd.Timestamp(T0 + timedelta(minutes=i)), "reporter_id": f"a{i}",
            "reporter_type": "buyer", "channel": "livestream", "subject_id": "s1", "show_id": None, "order_id": None,
            "category": "harassment", "description": ""}


def alert(ids: list[str]) -> Alert:
    return Alert(key=f"subject:s1:{T0.isoformat()}", scope="subject", subject_id="s1", show_id=None, window_start=T0,
                 window_end=T0 + timedelta(minutes=len(ids)), report_ids=tuple(sorted(ids)), count=len(ids),
                 distinct_reporters=len(ids), verdict="incident", reasons=("test",), share_new=0.0,
                 share_low_credibility=0.0, share_connected=0.0)


def test_a_report_joining_an_already_resolved_alert_stays_a_case_of_its_own(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'q.db'}")
    migrate(engine)
    queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
    now = T0 + timedelta(hours=1)
    queue.intake(pd.DataFrame([report(i) for i in range(3)]), [Score("rules", 10.0)] * 3, actor="t", now=now)
    case_id = queue.open_alert(alert(["r0", "r1", "r2"]), now)
    assert [c["case_id"] for c in queue.queue(now)] == [case_id]  # the three reports are one alert case

    claimed = queue.claim("inv", now)
    assert claimed["case_id"] == case_id
    queue.resolve(case_id, valid=False, severity=None, fraud_confirmed=False, notes=None, actor="inv",
                  role="investigator", now=now)
    later = now + timedelta(minutes=5)
    queue.intake(pd.DataFrame([report(3)]), [Score("rules", 10.0)], actor="t", now=later)
    queue.open_alert(alert(["r0", "r1", "r2", "r3"]), later)
    assert [c["case_id"] for c in queue.queue(later)] == ["case-r3"]
