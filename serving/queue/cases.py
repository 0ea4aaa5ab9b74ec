"""The triage queue's storage: intake, scores, cases, claims, alerts, outcomes, notifications.

Side effects live here and in the service; the rules (ranking, goals, rules-only
priority) are pure functions in policy/queue.py. Every report is stored
in its own transaction before the response says it was accepted, so a crash
mid-batch keeps what was stored and a retry stores only the rest. Every state
change writes an audit event in the same transaction.
"""
from __future__ import annotations

import gc
import io
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Engine,
    String,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError

from features import vocabulary as V
from policy.penalty import Account, Violation
from policy.queue import QueuePolicy, effective_priority, rank_cases
from serving.enforcement.ledger import Ledger, NotFoundError
from serving.input_checks import FieldError
from serving.store import tables as T
from serving.store.db import (
    append_audit,
    insert_if_absent,
    next_seq,
    reading,
    to_json,
    writer,
    writing,
)

REPORT_COLUMNS = ("report_id", "created_at", "reporter_id", "reporter_type", "channel", "subject_id", "show_id",
                  "order_id", "category", "description")


IN_CHUNK = 5_000  # ids per IN (...) list, well inside SQLite's limit on bound parameters
BASE_SLACK = 1e-6  # effective priorities are rounded to 6 decimals: bounds on base priority keep this margin
PROBE_MAX = 20_000
CLAIM_PAGE = 50  # cases a claim ranks at a time while it walks the queue  # the most cases a page's first probe reads before ranking them all instead


class CaseStateError(ValueError):
    """The case is not in a state that allows this (e.g. resolving a case someone else holds)."""


@dataclass(frozen=True)
class RankKey:
    """Where a case stands in the ranking (policy.queue.order_cases' key): a queue page's cursor."""
    tier: int
    effective_priority: float
    deadline_s: float
    case_id: str


@dataclass(frozen=True)
class Score:
    """One report's score, from the models or from the rules-only fallback."""
    scored_by: str
    priority: float
    p_valid: float | None = None
    severity: str | None = None
    fraud_risk: float | None = None
    detail: dict | None = None


def case_id_for(report_id: str) -> str:
    return f"case-{report_id}"


def _seconds(ts: datetime) -> float:
    return ts.timestamp()


class Queue:
    def __init__(self, engine: Engine, qp: QueuePolicy, ledger: Ledger):
        self.engine, self.qp, self.ledger = engine, qp, ledger

    # -- intake -------------------------------------------------------------------------------

    def intake(self, reports: pd.DataFrame, scores: list[Score], *, actor: str, now: datetime,
               evidence: list[Any] | None = None) -> dict:
        """Store each new report with its score and its own case; ids seen before are only named."""
        accepted, known = [], []
        with writer(self.engine) as conn:  # one connection, one transaction per report
            for i, row in enumerate(reports.to_dict("records")):
                report = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
                try:
                    with conn.begin():
                        exists = conn.execute(select(T.intake_reports.c.report_id)
                                              .where(T.intake_reports.c.report_id == report["report_id"])).first()
                        if exists:
                            known.append(report["report_id"])
                            continue
                        self._store_report(conn, report, scores[i], actor, now, evidence[i] if evidence else None)
                except IntegrityError:  # the same report arrived concurrently and the other request stored it
                    known.append(report["report_id"])
                    continue
                accepted.append(report["report_id"])
        return {"accepted": accepted, "already_known": known}

    def conflicts(self, reports: pd.DataFrame) -> list[FieldError]:
        """Reports of this batch whose id is stored already with other content, one FieldError per report naming
        the fields that differ (its REPORT_COLUMNS; evidence is the monitors' and not compared). An exact
        resend is no conflict: intake names it in already_known."""
        ids = reports["report_id"].tolist()
        with reading(self.engine) as conn:
            stored = {r["report_id"]: r for start in range(0, len(ids), IN_CHUNK) for r in conn.execute(
                select(*[T.intake_reports.c[c] for c in REPORT_COLUMNS])
                .where(T.intake_reports.c.report_id.in_(ids[start:start + IN_CHUNK]))).mappings()}
        out = []
        for i, row in enumerate(reports.to_dict("records")):
            kept = stored.get(row["report_id"])
            if kept is None:
                continue
            sent = {k: _plain(v) for k, v in row.items()}
            differ = [c for c in REPORT_COLUMNS[1:] if sent.get(c) != kept[c]]
            if differ:
                out.append(FieldError(f"reports[{i}]", f"{row['report_id']} is stored with other "
                                                       f"{', '.join(differ)}"))
        return out

    def _store_report(self, conn, report: dict, score: Score, actor: str, now: datetime, evidence) -> None:
        created = report["created_at"].to_pydatetime() if hasattr(report["created_at"], "to_pydatetime") else report["created_at"]
        family = V.family_of(report["category"])
        conn.execute(insert(T.intake_reports).values(
            report_id=report["report_id"], received_at=now, received_by=actor, created_at=created,
            reporter_id=report["reporter_id"], reporter_type=report["reporter_type"], channel=report["channel"],
            subject_id=report["subject_id"], show_id=report["show_id"], order_id=report["order_id"],
            category=report["category"], family=family, description=report["description"],
            evidence=to_json(evidence), seq=next_seq(conn, 1)))  # the features see it (serving/market/event_store.py)
        self._append_score(conn, report["report_id"], score, now)
        goal = self.qp.goals_hours[report["category"]]
        case_id = case_id_for(report["report_id"])
        conn.execute(insert(T.cases).values(
            case_id=case_id, kind="report", opened_at=created, subject_id=report["subject_id"], family=family,
            category=report["category"], deadline_at=created + timedelta(hours=goal), goal_hours=goal,
            base_priority=score.priority, tier=0, status="open", version=0))
        conn.execute(insert(T.case_reports).values(case_id=case_id, report_id=report["report_id"], added_at=now))
        append_audit(conn, at=now, actor=actor, action="intake", entity="report", entity_id=report["report_id"],
                     before=None, after={"case_id": case_id, "scored_by": score.scored_by, "priority": score.priority},
                     why=None)

    def _append_score(self, conn, report_id: str, score: Score, now: datetime) -> None:
        conn.execute(insert(T.report_scores).values(
            report_id=report_id, scored_at=now, scored_by=score.scored_by, p_valid=score.p_valid,
            severity=score.severity, fraud_risk=score.fraud_risk, priority=score.priority,
            detail=to_json(score.detail or {}), cold_start=bool((score.detail or {}).get("cold_start"))))

    # -- rescoring ----------------------------------------------------------------------------

    @staticmethod
    def _latest_scores(conn, report_ids: list[str]):
        """Each of these reports' current score: its newest row in the append-only score table."""
        return conn.execute(_LATEST_SCORES, {"ids": report_ids}).mappings().all()

    @staticmethod
    def _current_scores_where(*conditions):
        """Scores that match the conditions and are still their report's newest. The sweep asks this every few
        seconds: an index seek on the condition, then one probe per candidate for a newer score, where grouping
        every report's scores to find the newest read the whole table each time (issue 15's 100,000 cases)."""
        s, newer = T.report_scores, T.report_scores.alias("newer")
        superseded = select(newer.c.id).where(newer.c.report_id == s.c.report_id, newer.c.id > s.c.id).exists()
        return select(s).where(*conditions, ~superseded).order_by(s.c.id)

    def _reports(self, conn, report_ids: list[str]) -> pd.DataFrame:
        rows = conn.execute(select(*[T.intake_reports.c[c] for c in REPORT_COLUMNS])
                            .where(T.intake_reports.c.report_id.in_(report_ids))).mappings().all()
        frame = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).dt.as_unit("us")
        return frame

    def rules_scored_reports(self, limit: int = 1000) -> pd.DataFrame:
        """Reports whose current score is the rules-only fallback: to rescore once models are back."""
        with reading(self.engine) as conn:
            q = self._current_scores_where(T.report_scores.c.scored_by == "rules").limit(limit)
            ids = [r["report_id"] for r in conn.execute(q).mappings()]
            if not ids:
                return pd.DataFrame(columns=list(REPORT_COLUMNS))
            return self._reports(conn, ids)

    def cold_start_reports(self, limit: int = 1000) -> tuple[pd.DataFrame, list[list[str]]]:
        """Reports whose current score was given while they named accounts or orders not seen yet, with the
        fields that were unknown then: to rescore once those arrive."""
        with reading(self.engine) as conn:
            q = self._current_scores_where(T.report_scores.c.cold_start.is_(True)).limit(limit)
            unknown = {r["report_id"]: list((r["detail"] or {}).get("cold_start") or []) for r in conn.execute(q).mappings()}
            if not unknown:
                return pd.DataFrame(columns=list(REPORT_COLUMNS)), []
            frame = self._reports(conn, list(unknown))
        return frame, [unknown[r] for r in frame["report_id"]]

    def rescore(self, report_ids: list[str], scores: list[Score], now: datetime) -> None:
        """Append new scores and lift each affected case's base priority to its best report."""
        for report_id, score in zip(report_ids, scores):
            with writing(self.engine) as conn:
                self._append_score(conn, report_id, score, now)
                case_ids = [r[0] for r in conn.execute(select(T.case_reports.c.case_id)
                                                       .where(T.case_reports.c.report_id == report_id))]
                for case_id in case_ids:
                    self._refresh_case_priority(conn, case_id, now, actor="system:rescore")

    def _refresh_case_priority(self, conn, case_id: str, now: datetime, actor: str) -> None:
        ids = [r[0] for r in conn.execute(select(T.case_reports.c.report_id).where(T.case_reports.c.case_id == case_id))]
        best = max(float(s["priority"]) for s in self._latest_scores(conn, ids))
        before = conn.execute(select(T.cases.c.base_priority).where(T.cases.c.case_id == case_id)).scalar_one()
        if float(before) != best:
            conn.execute(update(T.cases).where(T.cases.c.case_id == case_id)
                         .values(base_priority=best, version=T.cases.c.version + 1))
            append_audit(conn, at=now, actor=actor, action="reprioritise", entity="case", entity_id=case_id,
                         before={"base_priority": before}, after={"base_priority": best}, why="new scores")

    # -- ranking ------------------------------------------------------------------------------

    def ranked(self, now: datetime, family: str | None = None, category: str | None = None) -> pd.DataFrame:
        """Open cases (and claims past their time-out) in rank order: case_id, tier, effective_priority, deadline_s.

        Only the five columns ranking needs are fetched, as raw driver values converted
        in one vectorised step: row-by-row type processing made 100k cases take 1.5 s.
        The cyclic garbage collector is paused while the rows are fetched and converted:
        the half a million tuples, strings and floats of 100k rows set off collections
        that walked the whole heap again and again (more than half of a re-rank's time).
        """
        c = T.cases.c
        open_now = or_(c.status == "open", and_(c.status == "claimed", c.claim_expires_at <= now))
        return self._rank([self._rank_query(family, category).where(open_now)], now)

    def _rank_query(self, family: str | None, category: str | None):
        """The five ranking columns of the cases, optionally filtered by family and category."""
        c = T.cases.c
        # opened_at without the UTCDateTime wrapper, converted below in one step: on SQLite the stored
        # ISO text; on PostgreSQL seconds since the epoch as a double (psycopg building 100k aware
        # datetimes and pandas converting them one by one took two thirds of a re-rank). date_part, not
        # EXTRACT: EXTRACT returns numeric, whose arithmetic cost the server a third of a re-rank; a double
        # holds today's epoch microseconds exactly (< 2^53), so rounding recovers them.
        postgres = self.engine.dialect.name == "postgresql"
        opened_at = func.date_part("epoch", c.opened_at) if postgres else type_coerce(c.opened_at, String)
        q = select(c.case_id, c.tier, c.base_priority, opened_at, c.goal_hours)
        if family:
            q = q.where(c.family == family)
        if category:
            q = q.where(c.category == category)
        return q

    def _rank(self, queries: list, now: datetime) -> pd.DataFrame:
        """The cases these queries select (_rank_query's columns, in one read transaction), ranked at `now`."""
        return self._rank_read(self._read(queries), now)

    def _read(self, queries: list, bulk: bool = True) -> list[RankColumns]:
        """The ranking columns each query selects, in its order, in one read transaction. `bulk=False` for the
        bounded reads of a page (a few hundred rows): on PostgreSQL, COPY and pyarrow's CSV reader cost more to
        start than such a read takes."""
        copy = bulk and self.engine.dialect.name == "postgresql"
        with _gc_paused():
            with reading(self.engine) as conn:
                return [_copy_columns(conn, q) if copy else _fetch_columns(conn, q) for q in queries]

    def _rank_read(self, parts: list[RankColumns], now: datetime) -> pd.DataFrame:
        ids, tier, base, opened_s, goal = (parts[0] if len(parts) == 1 else
                                           tuple(np.concatenate(cols) for cols in zip(*parts)))
        if not len(ids):
            return pd.DataFrame({"case_id": [], "tier": [], "effective_priority": [], "deadline_s": []})
        order, eff = rank_cases(ids, tier, base, opened_s, goal, _seconds(now), self.qp)
        return pd.DataFrame({"case_id": ids[order], "tier": tier[order], "effective_priority": eff[order],
                             "deadline_s": (opened_s + goal * 3600.0)[order]})

    def _ranked_top(self, now: datetime, n: int, family: str | None, category: str | None,
                    after: RankKey | None) -> pd.DataFrame:
        """The first n cases of `ranked` after `after`, without reading and ranking every open case.

        A case's effective priority lies between its base priority and base + the aging cap. So: rank the
        open cases with the best base priorities (tier first; read in index order, ix_cases_rank) until n of
        them rank after `after`; the n-th of those, (t, e), bounds the answer, since every case of the true
        first n ranks at least as well. A case can only do so with a higher tier or the same tier and a base
        priority of at least e - cap: reading those (a few thousand of 100,000 open cases) and ranking them
        gives exactly the rows `ranked` would, at a fraction of the cost (GET /queue at 100,000 open cases,
        issue 15's target). Claims past their time-out are few and always read. Without an aging cap nothing
        bounds a case's priority: everything is ranked.
        """
        if math.isinf(self.qp.aging_cap_points):
            ranked = self.ranked(now, family, category)
            return ranked.iloc[_first_after(ranked, after) if after else 0:][:n]
        c = T.cases.c
        q = self._rank_query(family, category)
        if after is not None:  # cases of a higher tier, or a base priority above the key's, rank before it
            q = q.where(or_(c.tier < after.tier,
                            and_(c.tier == after.tier, c.base_priority <= after.effective_priority + BASE_SLACK)))
        open_ = q.where(c.status == "open")
        expired = q.where(c.status == "claimed", c.claim_expires_at <= now)
        fetch = max(4 * n, 200)
        while True:
            top_open = open_.order_by(c.tier.desc(), c.base_priority.desc()).limit(fetch)
            parts = self._read([top_open, expired], bulk=False)
            probe = self._rank_read(parts, now)
            read_all = len(parts[0][0]) < fetch  # fewer open cases than asked for: the probe read them all
            probe = probe.iloc[_first_after(probe, after) if after else 0:]
            if read_all:
                return probe[:n]
            if len(probe) >= n:
                break
            if fetch >= PROBE_MAX:  # a cursor deep in a huge queue: rank it all
                ranked = self._rank([open_, expired], now)
                return ranked.iloc[_first_after(ranked, after) if after else 0:][:n]
            fetch *= 4
        bound = probe.iloc[n - 1]
        floor = float(bound["effective_priority"]) - self.qp.aging_cap_points - BASE_SLACK
        # The probe read open cases best base first, so every case it left out ranks at most as its last one:
        # when that one is already out of reach, so is every unread case, and the probe holds the answer.
        last_tier, last_base = int(parts[0][1][-1]), float(parts[0][2][-1])
        if last_tier < int(bound["tier"]) or (last_tier == int(bound["tier"]) and last_base < floor):
            return probe[:n]
        reach = or_(c.tier > int(bound["tier"]), and_(c.tier == int(bound["tier"]), c.base_priority >= floor))
        candidates = self._rank_read(self._read([open_.where(reach), expired], bulk=False), now)
        return candidates.iloc[_first_after(candidates, after) if after else 0:][:n]

    def queue(self, now: datetime, limit: int = 50, family: str | None = None, category: str | None = None) -> list[dict]:
        """Open cases in priority order, with scores, top reasons, deadline and the time left."""
        return self.page(now, limit, family, category)[0]

    def page(self, now: datetime, limit: int = 50, family: str | None = None, category: str | None = None,
             after: RankKey | None = None) -> tuple[list[dict], RankKey | None]:
        """A page of the queue: the first `limit` open cases ranking after `after` (from the top when None),
        and the rank key of its last case when more follow (None on the last page).

        The queue is ranked afresh for every page, at `now`: a page continues after the previous page's last
        case by its rank key (tier, effective priority, deadline, case id), not from a snapshot. A case that
        climbed past that key since (aging, a new score, a released claim) is not in the later pages but at
        the top again; one that fell behind it may show twice. Paging by key rather than by offset keeps a
        case from being skipped because cases above it were claimed meanwhile.
        """
        top = self._ranked_top(now, limit + 1, family, category, after)  # one more says whether more follow
        rows, more = top.iloc[:limit], len(top) > limit
        last = rows.iloc[-1] if more and len(rows) else None
        key = None if last is None else RankKey(int(last["tier"]), float(last["effective_priority"]),
                                                float(last["deadline_s"]), str(last["case_id"]))
        top = [{"case_id": c, "effective_priority": e} for c, e in zip(rows["case_id"].tolist(),
                                                                        rows["effective_priority"].tolist())]
        return self._page_rows(top, now), key

    def _page_rows(self, top: list[dict], now: datetime) -> list[dict]:
        """The queue's view of these ranked cases, read in three queries for the whole page."""
        case_ids = [r["case_id"] for r in top]
        with reading(self.engine) as conn:
            # three queries for the whole page rather than three per case
            rows = {r["case_id"]: r for r in conn.execute(_PAGE_CASES, {"ids": case_ids}).mappings()}
            links: dict[str, list[str]] = {case_id: [] for case_id in case_ids}
            for case_id, report_id in conn.execute(_PAGE_LINKS, {"ids": case_ids}):
                links[case_id].append(report_id)
            report_ids = sorted({rid for ids in links.values() for rid in ids})
            scores = {s["report_id"]: s for start in range(0, len(report_ids), IN_CHUNK)
                      for s in self._latest_scores(conn, report_ids[start:start + IN_CHUNK])}
        return [self._summary({**rows[r["case_id"]], "effective_priority": r["effective_priority"]},
                              links[r["case_id"]], [scores[i] for i in links[r["case_id"]] if i in scores], now)
                for r in top]

    @staticmethod
    def _case_row(conn, ranked_row: dict) -> dict:
        row = conn.execute(select(T.cases).where(T.cases.c.case_id == ranked_row["case_id"])).mappings().one()
        return {**row, "effective_priority": ranked_row["effective_priority"]}

    def _case_summary(self, conn, row: dict, now: datetime) -> dict:
        ids = [r[0] for r in conn.execute(select(T.case_reports.c.report_id)
                                          .where(T.case_reports.c.case_id == row["case_id"]).order_by(T.case_reports.c.report_id))]
        return self._summary(row, ids, self._latest_scores(conn, ids), now)

    @staticmethod
    def _summary(row: dict, ids: list[str], scores: list, now: datetime) -> dict:
        """What the queue shows of a case: row, its report ids (sorted) and their latest scores."""
        scores = sorted(scores, key=lambda s: (-float(s["priority"]), s["report_id"]))
        lead = scores[0] if scores else {"scored_by": None, "p_valid": None, "severity": None, "fraud_risk": None,
                                         "detail": {}}
        left = (row["deadline_at"] - now).total_seconds()
        return {
            "case_id": row["case_id"], "kind": row["kind"], "subject_id": row["subject_id"],
            "family": row["family"], "category": row["category"], "reports": len(ids),
            "priority": float(row["effective_priority"]) if "effective_priority" in row else None,
            "base_priority": float(row["base_priority"]),
            "scored_by": lead["scored_by"], "p_valid": lead["p_valid"], "severity": lead["severity"],
            "fraud_risk": lead["fraud_risk"], "reasons": (lead["detail"] or {}).get("reasons", [])[:3],
            "model_versions": (lead["detail"] or {}).get("model_versions"),
            "deadline": row["deadline_at"].isoformat(), "seconds_left": round(left, 1),
            "goal_hours": float(row["goal_hours"]),
        }

    # -- claims -------------------------------------------------------------------------------

    def claim(self, actor: str, now: datetime, case_id: str | None = None) -> dict | None:
        """Hand `actor` the best open case, or the case named; a conditional update makes concurrent claims
        exclusive (of two claims on one case, the second matches no row and moves on or is refused)."""
        if case_id is not None:
            return self._claim_named(case_id, actor, now)
        after: RankKey | None = None
        while True:
            # Walk the whole ranking, a bounded page at a time (ranking every open case per claim cost a claim
            # seconds at 100,000 open cases): under many concurrent claims the top of a ranking read a moment
            # ago is taken already (trying only the top 50 answered "empty" with 2,000 cases open, issue 15,
            # defect 6). A ranking used up while cases remain open (taken, released, or changed under us) is
            # read again from the top; each pass either hands out a case or sees fewer open ones, so it ends.
            ranking = self._ranked_top(now, CLAIM_PAGE, None, None, after)
            if ranking.empty:
                if after is None:
                    return None
                after = None
                continue
            for r in ranking.to_dict("records"):
                with writing(self.engine) as conn:
                    row = self._case_row(conn, {"case_id": r["case_id"], "effective_priority": r["effective_priority"]})
                    if self._take(conn, row, actor, now):
                        return self._claimed_view(conn, row, actor, now)
            last = ranking.iloc[-1]
            after = RankKey(int(last["tier"]), float(last["effective_priority"]), float(last["deadline_s"]),
                            str(last["case_id"]))

    def _claim_named(self, case_id: str, actor: str, now: datetime) -> dict:
        """Claim this case (an investigator picked it), or say who or what stands in the way. Claiming a case
        you already hold answers it unchanged, so a retried request is harmless."""
        with writing(self.engine) as conn:
            row = self._locked_case(conn, case_id)
            if _holder(row, now) == actor:
                return self._claimed_view(conn, row, actor, now, priority=self._priority_now(row, now))
            if not self._take(conn, row, actor, now):
                raise CaseStateError(f"case '{case_id}' {self._describe(conn, row, now)}"
                                     + (": claim that case instead" if row["status"] == "merged" else ""))
            return self._claimed_view(conn, row, actor, now, priority=self._priority_now(row, now))

    def _take(self, conn, row: dict, actor: str, now: datetime) -> bool:
        """Claim the case as read in `row` if it is still open (or its claim timed out) and unchanged since;
        audited. False when another request got there first or the case is not claimable."""
        c = T.cases.c
        expires = now + timedelta(minutes=self.qp.claim_timeout_minutes)
        current = {k: row[k] for k in ("status", "claimed_by", "claim_expires_at", "version")}
        done = conn.execute(update(T.cases).where(
            c.case_id == row["case_id"], c.version == current["version"],
            or_(c.status == "open", and_(c.status == "claimed", c.claim_expires_at <= now)),
        ).values(status="claimed", claimed_by=actor, claim_expires_at=expires, version=c.version + 1))
        if done.rowcount != 1:
            return False
        if current["status"] == "claimed":
            append_audit(conn, at=now, actor="system:claim-timeout", action="release", entity="case",
                         entity_id=row["case_id"], before=current, after={"status": "open"},
                         why=f"claim by {current['claimed_by']} expired at {current['claim_expires_at']}")
        append_audit(conn, at=now, actor=actor, action="claim", entity="case", entity_id=row["case_id"],
                     before={"status": "open"}, after={"status": "claimed", "claim_expires_at": expires}, why=None)
        row.update(status="claimed", claimed_by=actor, claim_expires_at=expires)  # what the caller answers with
        return True

    def _claimed_view(self, conn, row: dict, actor: str, now: datetime, priority: float | None = None) -> dict:
        summary = self._case_summary(conn, row if priority is None else {**row, "effective_priority": priority}, now)
        return {**summary, "claimed_by": actor, "claim_expires_at": row["claim_expires_at"].isoformat()}

    def _priority_now(self, row: dict, now: datetime) -> float:
        """The case's effective priority at `now`, as the queue would rank it (without ranking every case)."""
        waited = np.array([(now - row["opened_at"]).total_seconds()])
        return float(effective_priority(np.array([float(row["base_priority"])]), waited,
                                        np.array([float(row["goal_hours"])]), self.qp)[0])

    def release(self, case_id: str, actor: str, now: datetime) -> dict:
        """Give a case `actor` holds back to the queue (e.g. it needs someone else's expertise), so nobody has to
        wait for the claim to time out; only the holder may, and the release is audited."""
        c = T.cases.c
        with writing(self.engine) as conn:
            row = self._locked_case(conn, case_id)
            if _holder(row, now) != actor:
                raise CaseStateError(f"case '{case_id}' {self._describe(conn, row, now)}: "
                                     "only the investigator holding it can release it")
            conn.execute(update(T.cases).where(c.case_id == case_id, c.version == row["version"])
                         .values(status="open", claimed_by=None, claim_expires_at=None, version=c.version + 1))
            append_audit(conn, at=now, actor=actor, action="release", entity="case", entity_id=case_id,
                         before={"status": "claimed", "claimed_by": actor, "claim_expires_at": row["claim_expires_at"]},
                         after={"status": "open"}, why=None)
        return {"case_id": case_id, "status": "open", "released_by": actor}

    @staticmethod
    def _locked_case(conn, case_id: str) -> dict:
        """The case row, locked until the transaction ends (PostgreSQL: FOR UPDATE; SQLite's writer already holds
        the database's write lock), so checking its state and changing it cannot interleave with another writer."""
        row = conn.execute(select(T.cases).where(T.cases.c.case_id == case_id).with_for_update()).mappings().first()
        if row is None:
            raise NotFoundError(f"unknown case '{case_id}'")
        return dict(row)

    @staticmethod
    def _describe(conn, row: dict, now: datetime) -> str:
        """The case's state in words for a refusal: who holds it and until when, or who resolved it and when."""
        if row["status"] == "resolved":
            done = conn.execute(select(T.audit_events.c.actor, T.audit_events.c.at).where(
                T.audit_events.c.entity == "case", T.audit_events.c.entity_id == row["case_id"],
                T.audit_events.c.action == "resolve").order_by(T.audit_events.c.id.desc()).limit(1)).first()
            return "is already resolved" + (f" (by {done[0]} at {done[1].isoformat()})" if done else "")
        if row["status"] == "merged":
            return f"was merged into '{row['merged_into']}'"
        if row["status"] == "claimed" and row["claim_expires_at"] > now:
            return f"is claimed by {row['claimed_by']} until {row['claim_expires_at'].isoformat()}"
        if row["status"] == "claimed":
            return f"is open (the claim by {row['claimed_by']} expired at {row['claim_expires_at'].isoformat()})"
        return f"is {row['status']}"

    # -- one case -----------------------------------------------------------------------------

    def case(self, case_id: str, now: datetime, role: str) -> dict:
        """The case, its reports with scores and reasons, the subject's record, and the proposed penalty."""
        with reading(self.engine) as conn:
            row = conn.execute(select(T.cases).where(T.cases.c.case_id == case_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"unknown case '{case_id}'")
            ids = [r[0] for r in conn.execute(select(T.case_reports.c.report_id).where(T.case_reports.c.case_id == case_id))]
            reports = conn.execute(select(T.intake_reports).where(T.intake_reports.c.report_id.in_(ids))
                                   .order_by(T.intake_reports.c.created_at, T.intake_reports.c.report_id)).mappings().all()
            scores = {s["report_id"]: s for s in self._latest_scores(conn, ids)}
            alert = conn.execute(select(T.alerts).where(T.alerts.c.case_id == case_id)).mappings().first()
        try:
            health = self.ledger.health(row["subject_id"], now)
        except NotFoundError:
            health = {"account_id": row["subject_id"], "account_health": "excellent", "counting_violations": [],
                      "active_penalties": [], "history": []}
        lead = max(scores.values(), key=lambda s: float(s["priority"]))
        return {
            "case": {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()},
            "alert": dict(alert["detail"], status=alert["status"]) if alert else None,
            "reports": [{**{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in r.items()},
                         "score": _score_view(scores[r["report_id"]])} for r in reports],
            "subject": health,
            "proposed_penalty": self._proposal(row, lead, role, now, alert["detail"].get("verdict") if alert else None),
        }

    def _proposal(self, case: dict, lead, role: str, now: datetime, verdict: str | None) -> dict:
        """The mapper's decision for the case: if confirmed at the lead report's predicted severity, or,
        for a spike, while it is investigated. A real incident is treated as at least high severity, so
        the subject is put on hold; a brigade's target is not held on the brigade's word."""
        severity = lead["severity"] or "medium"
        stage = "confirmed"
        if case["kind"] == "spike":
            stage = "under_investigation"
            if verdict == "incident":
                severity = max(severity, "high", key=V.SEVERITIES.index)
            elif verdict == "brigading":
                severity = min(severity, "medium", key=V.SEVERITIES.index)
        violation = Violation(case["family"], case["category"], severity, min(case["opened_at"], now), stage)
        decision = self.ledger.propose(Account(case["subject_id"], role), violation, now)
        return {"severity": severity, "stage": stage, "spike_verdict": verdict, **decision.to_dict()}

    def subject_of(self, case_id: str) -> str:
        with reading(self.engine) as conn:
            subject = conn.execute(select(T.cases.c.subject_id).where(T.cases.c.case_id == case_id)).scalar()
        if subject is None:
            raise NotFoundError(f"unknown case '{case_id}'")
        return subject

    # -- resolving ----------------------------------------------------------------------------

    def resolve(self, case_id: str, *, valid: bool, severity: str | None, fraud_confirmed: bool, notes: str | None,
                actor: str, role: str | None, now: datetime, model_versions: dict | None = None) -> dict:
        """Close a case held by `actor`: store the outcome, record a valid violation, notify reporters.

        Sending the same resolution again (same investigator, verdict and notes: the answer was lost on the way
        back) is answered as the first time and changes nothing, except that it records the violation if the
        first attempt stopped before it could."""
        c = T.cases.c
        with writing(self.engine) as conn:
            row = self._locked_case(conn, case_id)
            resolved_at = self._resolved_alike(conn, row, actor, notes, valid=valid, severity=severity,
                                               fraud_confirmed=fraud_confirmed)
            if resolved_at is None and _holder(row, now) != actor:
                raise CaseStateError(self._not_resolvable(conn, row, now))
            ids = [r[0] for r in conn.execute(select(T.case_reports.c.report_id).where(T.case_reports.c.case_id == case_id))]
            reports = conn.execute(select(T.intake_reports).where(T.intake_reports.c.report_id.in_(ids))).mappings().all()
            lead = max(self._latest_scores(conn, ids), key=lambda s: float(s["priority"]))
            if resolved_at is None:
                resolved_at = now
                self._close(conn, row, reports, valid=valid, severity=severity, fraud_confirmed=fraud_confirmed,
                            notes=notes, actor=actor, now=now)
        decision, violation_id = None, None
        if valid:
            violation_id = f"v-{case_id}"
            stored = self.ledger.first_decision(violation_id)
            if stored is None:
                stored = self.ledger.record_violation(
                    violation_id, Account(row["subject_id"], role or "seller"),
                    Violation(row["family"], row["category"], severity, min(row["opened_at"], resolved_at)),
                    actor=actor, as_of=resolved_at, source_report_id=lead["report_id"],
                    model_versions=(lead["detail"] or {}).get("model_versions") or model_versions).decision
            decision = stored.to_dict()
        return {"case_id": case_id, "status": "resolved", "reports": len(ids), "violation_id": violation_id,
                "violation": decision,
                "notified": sorted({r["reporter_id"] for r in reports if r["reporter_id"]})}

    def _close(self, conn, row: dict, reports, *, valid: bool, severity: str | None, fraud_confirmed: bool,
               notes: str | None, actor: str, now: datetime) -> None:
        c, case_id = T.cases.c, row["case_id"]
        for r in reports:
            insert_if_absent(conn, T.review_outcomes, dict(
                report_id=r["report_id"], case_id=case_id, valid=valid, severity=severity if valid else None,
                fraud_confirmed=fraud_confirmed, resolved_at=now, resolved_by=actor, notes=notes))
            # The contract's outcome, which the features read (review_outcomes keeps who and why).
            insert_if_absent(conn, T.market_outcomes, dict(
                report_id=r["report_id"], valid=valid, severity=severity if valid else None,
                fraud_confirmed=fraud_confirmed, resolved_at=now, seq=next_seq(conn, 1), received_at=now,
                received_by=actor))
            if r["reporter_id"]:
                conn.execute(insert(T.notifications).values(
                    at=now, reporter_id=r["reporter_id"], report_id=r["report_id"], case_id=case_id,
                    message=f"Thank you for your report {r['report_id']}: the investigation is closed."))
        conn.execute(update(T.cases).where(c.case_id == case_id, c.version == row["version"])
                     .values(status="resolved", version=c.version + 1))
        append_audit(conn, at=now, actor=actor, action="resolve", entity="case", entity_id=case_id,
                     before={"status": "claimed"},
                     after={"status": "resolved", "valid": valid, "severity": severity,
                            "fraud_confirmed": fraud_confirmed}, why=notes)

    @staticmethod
    def _resolved_alike(conn, row: dict, actor: str, notes: str | None, **verdict) -> datetime | None:
        """When the case was resolved by this actor with this verdict and notes: the time it was; else None."""
        if row["status"] != "resolved":
            return None
        a = T.audit_events.c
        event = conn.execute(select(a.at, a.actor, a.after, a.why)
                             .where(a.entity == "case", a.entity_id == row["case_id"], a.action == "resolve")
                             .order_by(a.id.desc()).limit(1)).mappings().first()
        if event is None or event["actor"] != actor or event["why"] != notes:
            return None
        after = event["after"] or {}
        return event["at"] if all(after.get(k) == v for k, v in verdict.items()) else None

    def _not_resolvable(self, conn, row: dict, now: datetime) -> str:
        """Why `actor` cannot resolve the case, saying what happened rather than only what to do."""
        what = f"case '{row['case_id']}' {self._describe(conn, row, now)}"
        if row["status"] in ("resolved", "merged"):
            return what
        if _holder(row, now) is not None:
            return f"{what}: only the investigator holding it can resolve it"
        return f"{what}: claim it before resolving"

    # -- alerts -------------------------------------------------------------------------------

    def open_alert(self, alert, now: datetime) -> str:
        """Group a spike's reports into one alert case that ranks above ordinary cases (idempotent by key)."""
        case_id = f"alert-{alert.key}"
        detail = to_json({k: getattr(alert, k) for k in alert.__dataclass_fields__})
        with writing(self.engine) as conn:
            rows = conn.execute(select(T.intake_reports.c.report_id, T.intake_reports.c.category)
                                .where(T.intake_reports.c.report_id.in_(alert.report_ids))).all()
            if not rows:
                return case_id
            exists = conn.execute(select(T.alerts.c.alert_key).where(T.alerts.c.alert_key == alert.key)).first()
            if exists and conn.execute(select(T.cases.c.status).where(T.cases.c.case_id == case_id)).scalar() == "resolved":
                # The incident was handled: later reports stay cases of their own instead of vanishing
                # into a closed case nobody will look at again.
                return case_id
            categories = pd.Series([r[1] for r in rows]).value_counts()
            category = sorted(categories[categories == categories.max()].index)[0]
            goal = min(self.qp.goals_hours[r[1]] for r in rows)
            if not exists:
                conn.execute(insert(T.cases).values(
                    case_id=case_id, kind="spike", opened_at=alert.window_start, subject_id=alert.subject_id,
                    family=V.family_of(category), category=category,
                    deadline_at=alert.window_start + timedelta(hours=goal), goal_hours=goal, base_priority=0.0,
                    tier=self.qp.alert_tier, status="open", version=0))
                conn.execute(insert(T.alerts).values(alert_key=alert.key, detected_at=now, case_id=case_id,
                                                     status="open", detail=detail))
                append_audit(conn, at=now, actor="system:spikes", action="alert", entity="case", entity_id=case_id,
                             before=None, after=detail, why="; ".join(alert.reasons))
            else:
                conn.execute(update(T.alerts).where(T.alerts.c.alert_key == alert.key).values(detail=detail))
            for report_id, _ in rows:
                insert_if_absent(conn, T.case_reports, dict(case_id=case_id, report_id=report_id, added_at=now))
                own = case_id_for(report_id)
                merged = conn.execute(update(T.cases).where(T.cases.c.case_id == own, T.cases.c.status == "open")
                                      .values(status="merged", merged_into=case_id, version=T.cases.c.version + 1))
                if merged.rowcount:
                    append_audit(conn, at=now, actor="system:spikes", action="merge", entity="case", entity_id=own,
                                 before={"status": "open"}, after={"status": "merged", "merged_into": case_id},
                                 why=f"part of alert {alert.key}")
            self._refresh_case_priority(conn, case_id, now, actor="system:spikes")
        return case_id

    def alerts(self, status: str = "open") -> list[dict]:
        with reading(self.engine) as conn:
            rows = conn.execute(select(T.alerts).where(T.alerts.c.status == status)
                                .order_by(T.alerts.c.detected_at, T.alerts.c.alert_key)).mappings().all()
            out = []
            for r in rows:
                case = conn.execute(select(T.cases.c.status).where(T.cases.c.case_id == r["case_id"])).scalar_one()
                out.append({"alert_key": r["alert_key"], "case_id": r["case_id"], "case_status": case,
                            "detected_at": r["detected_at"].isoformat(), **r["detail"]})
        return out

    def recent_reports(self, subject_ids: list[str], since: datetime) -> pd.DataFrame:
        """Stored reports about these subjects filed since `since`: the spike detector's input."""
        cols = list(REPORT_COLUMNS)
        with reading(self.engine) as conn:
            # Reports of the queue only: imported ones resolved long ago have no case and no score to group.
            rows = conn.execute(select(*[T.intake_reports.c[c] for c in cols]).where(
                T.intake_reports.c.subject_id.in_(subject_ids), T.intake_reports.c.created_at >= since,
                T.intake_reports.c.report_id.in_(select(T.case_reports.c.report_id)))).mappings().all()
        frame = pd.DataFrame(rows, columns=cols)
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).dt.as_unit("us")
        return frame

    def open_rule_cases(self, sellers: list[str]) -> set[tuple[str, str]]:
        """(seller, rule) of the fulfilment-rule cases still open or claimed for these sellers (case ids end
        with the rule: see serving.queue.monitors._fulfillment_report)."""
        c = T.cases.c
        with reading(self.engine) as conn:
            rows = conn.execute(select(c.subject_id, c.case_id).where(
                c.subject_id.in_(sellers), c.status.in_(("open", "claimed")), c.case_id.like("case-fr-%"))).all()
        return {(subject, case_id.rsplit("-", 1)[1]) for subject, case_id in rows}

    # -- labels -------------------------------------------------------------------------------

    def export_outcomes(self) -> pd.DataFrame:
        """Resolved outcomes in the data contract's outcomes table shape."""
        with reading(self.engine) as conn:
            rows = conn.execute(select(T.review_outcomes.c.report_id, T.review_outcomes.c.valid,
                                       T.review_outcomes.c.severity, T.review_outcomes.c.fraud_confirmed,
                                       T.review_outcomes.c.resolved_at).order_by(T.review_outcomes.c.report_id)).mappings().all()
        frame = pd.DataFrame(rows, columns=["report_id", "valid", "severity", "fraud_confirmed", "resolved_at"])
        frame["resolved_at"] = pd.to_datetime(frame["resolved_at"], utc=True).dt.as_unit("us")
        return frame

    def export_reports(self) -> pd.DataFrame:
        with reading(self.engine) as conn:
            rows = conn.execute(select(*[T.intake_reports.c[c] for c in REPORT_COLUMNS])
                                .order_by(T.intake_reports.c.report_id)).mappings().all()
        frame = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).dt.as_unit("us")
        return frame


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (reference counting still frees memory).

    For bulk reads that allocate many short-lived tuples: each allocation burst would
    otherwise trigger collections that scan every object the process holds. Safe with
    threads: whoever paused collection turns it back on, so it always ends enabled.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _first_after(ranked: pd.DataFrame, key: RankKey) -> int:
    """The position of the first ranked case that ranks after `key` (len(ranked) when none does): the ranking is
    sorted by (-tier, -effective priority, deadline, case id), so those cases are a suffix of it."""
    tier, eff, deadline = (ranked[c].to_numpy() for c in ("tier", "effective_priority", "deadline_s"))
    before = ((tier > key.tier) | ((tier == key.tier) & (eff > key.effective_priority))
              | ((tier == key.tier) & (eff == key.effective_priority) & (deadline < key.deadline_s)))
    tied = np.flatnonzero((tier == key.tier) & (eff == key.effective_priority) & (deadline == key.deadline_s))
    at = int(np.count_nonzero(before))
    ids = ranked["case_id"].to_numpy()
    return at + sum(1 for i in tied if ids[i] <= key.case_id)


RankColumns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# Built once: every queue page and case view reads its reports' current scores, and building the statement
# cost as much as running it.
_LATEST_SCORES = select(T.report_scores).where(T.report_scores.c.id.in_(
    select(func.max(T.report_scores.c.id)).where(T.report_scores.c.report_id.in_(bindparam("ids", expanding=True)))
    .group_by(T.report_scores.c.report_id)))
_PAGE_CASES = select(T.cases).where(T.cases.c.case_id.in_(bindparam("ids", expanding=True)))
_PAGE_LINKS = (select(T.case_reports.c.case_id, T.case_reports.c.report_id)
               .where(T.case_reports.c.case_id.in_(bindparam("ids", expanding=True)))
               .order_by(T.case_reports.c.case_id, T.case_reports.c.report_id))


def _fetch_columns(conn, q) -> RankColumns:
    """The rows as driver tuples, each column converted in one step: opened_at is ISO text on SQLite, epoch
    seconds (a double) on PostgreSQL (_rank_query)."""
    rows = conn.execute(q).all()
    if not rows:
        return (np.array([], dtype=object),) + (np.array([]),) * 4
    ids, tier, base, opened, goal = zip(*rows)
    del rows
    if not isinstance(opened[0], str):  # PostgreSQL's epoch seconds, rounded to the microsecond as COPY's are
        opened_us = np.round(np.asarray(opened, dtype=float) * 1e6).astype(np.int64)
    elif len(opened) <= FEW_ROWS:  # a queue page's few hundred: pandas' fixed cost was most of the read
        opened_us = np.fromiter((_epoch_us(t) for t in opened), dtype=np.int64, count=len(opened))
    else:
        opened_us = pd.to_datetime(pd.Series(opened), utc=True, format="ISO8601").dt.as_unit("us").astype(
            "int64").to_numpy()
    return (np.asarray(ids, dtype=object), np.asarray(tier, dtype=int), np.asarray(base, dtype=float),
            opened_us / 1e6, np.asarray(goal, dtype=float))


FEW_ROWS = 2_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(text: str) -> int:
    """Microseconds since the epoch of a stored ISO time (no zone = UTC), as pandas reads it."""
    when = datetime.fromisoformat(text)
    return ((when.replace(tzinfo=UTC) if when.tzinfo is None else when) - _EPOCH) // timedelta(microseconds=1)


def _copy_columns(conn, q) -> RankColumns:
    """PostgreSQL: the rows through COPY as CSV, parsed by pyarrow. Fetching 100k rows as Python tuples
    (psycopg parsing each value, then numpy converting each tuple) took three times as long: profiled,
    it was most of a 270 ms re-rank. opened_at arrives as epoch seconds (a double: exact to the
    microsecond for today's dates, since those stay below 2^53)."""
    compiled = q.compile(dialect=conn.dialect)
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cur:
        with cur.copy(f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv)", compiled.params) as copy:
            for block in copy:
                buffer.write(block)
    if not buffer.tell():
        return (np.array([], dtype=object),) + (np.array([]),) * 4
    buffer.seek(0)
    names = ["case_id", "tier", "base", "opened", "goal"]
    frame = pd.read_csv(buffer, header=None, names=names, engine="pyarrow",
                        dtype={"case_id": str, "tier": "int64", "base": "float64", "opened": "float64", "goal": "float64"})
    opened_us = np.round(frame["opened"].to_numpy() * 1e6).astype(np.int64)
    return (frame["case_id"].to_numpy(dtype=object), frame["tier"].to_numpy(), frame["base"].to_numpy(),
            opened_us / 1e6, frame["goal"].to_numpy())


def _plain(value: Any) -> Any:
    """A request frame's value as the store gives it back: NaN as None, a Timestamp as a datetime."""
    if isinstance(value, float) and np.isnan(value):
        return None
    return value.to_pydatetime() if isinstance(value, pd.Timestamp) else value


def _holder(row: dict, now: datetime) -> str | None:
    """Who holds the case now: its claimant while the claim runs, else nobody (a timed-out claim is open)."""
    return row["claimed_by"] if row["status"] == "claimed" and row["claim_expires_at"] > now else None


def _score_view(s) -> dict:
    detail = s["detail"] or {}
    return {"scored_by": s["scored_by"], "priority": float(s["priority"]), "p_valid": s["p_valid"],
            "severity": s["severity"], "fraud_risk": s["fraud_risk"], **detail,
            "scored_at": s["scored_at"].isoformat()}
