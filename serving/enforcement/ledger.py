"""The enforcement ledger: confirmed violations, the decisions taken on them, appeals and remedial steps.

Plain Python over serving.store.db; the HTTP routes and the CLI call this. Every
change is one transaction that appends rows (violation, decision, event) and an
audit event together; nothing is ever updated or deleted, so an account's record
can be replayed as of any time. Decisions come from the penalty mapper run on
the account's stored record, never on what a caller says the record is.

Writes for one account are serialised: SQLite takes its write lock at BEGIN and
PostgreSQL locks the account's row, so two violations of the same account can
never be decided without seeing each other.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, func, insert, select
from sqlalchemy.exc import IntegrityError

from features import vocabulary as V
from policy.penalty import (
    APPEALS,
    Account,
    Action,
    Decision,
    PastViolation,
    Policy,
    Violation,
    account_health,
    decide,
)
from serving.enforcement.account_record import (
    StoredViolation,
    health_view,
    known_history,
    load_account,
    load_violation,
    past_from_json,
    past_to_json,
)
from serving.input_checks import FieldError
from serving.store import tables as T
from serving.store.conflicts import ConflictError
from serving.store.db import (
    StoreError,
    append_audit,
    insert_if_absent,
    insert_rows,
    next_seq,
    reading,
    to_json,
    writing,
)


class LedgerError(ValueError):
    """A request the ledger refuses: it would make the record wrong (bad stage, time, role or conflicting retry)."""


class NotFoundError(LookupError):
    """No such violation or account in the ledger."""


@dataclass(frozen=True)
class Recorded:
    violation_id: str
    decision: Decision  # the decision taken when the violation was recorded
    created: bool  # False for a retry of an id already recorded


class Ledger:
    def __init__(self, engine: Engine, policy: Policy):
        self.engine = engine
        self.policy = policy

    # -- recording ---------------------------------------------------------

    def record_violation(self, violation_id: str, account: Account, violation: Violation, *, actor: str,
                         as_of: datetime, source_report_id: str | None = None,
                         model_versions: dict[str, str] | None = None, as_of_stated: bool = True) -> Recorded:
        """Decide on a confirmed violation from the account's stored record and store it; idempotent by id.

        A retry with the same id and content records nothing and returns the stored
        decision (created=False); the same id with other content is a ConflictError (409)
        naming each field that differs. Content is what was recorded: the account and its
        role, family, category, severity, occurred_at, as_of (the recording time the decision
        was taken at), source_report_id and model_versions; not the actor, so a retry by
        another worker or key is still a retry. `as_of_stated=False` says the caller let
        as_of default to its own clock, which a retry cannot repeat: it is then not compared.
        """
        _check_new(violation_id, account, violation, as_of)
        sent = _content(account, violation, as_of if as_of_stated else None, source_report_id, model_versions)
        try:
            with writing(self.engine) as conn:
                return self._record(conn, violation_id, account, violation, actor, as_of,
                                    source_report_id, model_versions, sent)
        except IntegrityError as err:  # the same id stored meanwhile under another account's lock
            with reading(self.engine) as conn:
                stored = load_violation(conn, violation_id)
            if stored is None:
                raise StoreError(f"recording violation {violation_id} failed: {err.orig}") from err
            return _retried(stored, sent)

    def _record(self, conn: Connection, violation_id: str, account: Account, violation: Violation, actor: str,
                as_of: datetime, source_report_id: str | None, model_versions: dict[str, str] | None,
                sent: dict[str, Any]) -> Recorded:
        role = _lock_account(conn, account, as_of)
        stored = load_violation(conn, violation_id)
        if stored is not None:
            return _retried(stored, sent)
        if role != account.role:
            raise LedgerError(f"account {account.account_id} is recorded as a {role}, not a {account.role}")
        _, others = load_account(conn, account.account_id)
        known = known_history(others, as_of)
        history = [v.past() for v in known]
        decision = decide(as_of, account, violation, history, self.policy)
        row = {"violation_id": violation_id, "account_id": account.account_id, "role": account.role,
               "family": violation.family, "category": violation.category, "severity": violation.severity,
               "occurred_at": violation.occurred_at, "recorded_at": as_of, "recorded_by": actor,
               "source_report_id": source_report_id, "model_versions": model_versions}
        conn.execute(insert(T.violations).values(**row, seq=next_seq(conn, 1)))  # the features see it (market.py)
        snapshot = [past_to_json(v.violation_id, p) for v, p in zip(known, history)]
        _append_decision(conn, violation_id, decision, at=as_of, actor=actor, cause="recorded", history=snapshot)
        append_audit(conn, at=as_of, actor=actor, action="violation.recorded", entity="violation",
                     entity_id=violation_id, before=None, after={**row, "decision": decision.to_dict()},
                     why=f"from report {source_report_id}" if source_report_id else None)
        return Recorded(violation_id, decision, created=True)

    # -- later events --------------------------------------------------------

    def first_decision(self, violation_id: str) -> Decision | None:
        """The decision taken when the violation was recorded (later appeals aside); None if it is not."""
        with reading(self.engine) as conn:
            stored = load_violation(conn, violation_id)
        return stored.decisions[0].decision if stored is not None else None

    def appeal(self, violation_id: str, outcome: str, *, actor: str, why: str | None, at: datetime,
               at_stated: bool = True) -> dict:
        """Record the violation's one appeal; returns the account's health view afterwards.

        An overturned violation stops counting and its penalties lift from `at`; an
        upheld one stays as it was. One appeal per violation: a second is a ConflictError
        (409) naming the first (outcome, when, who), since an appeal is a decision taken
        once, not a vote the latest caller wins. An identical retry (same outcome, actor and
        why; the same `at` when the caller stated it) records nothing and answers the view,
        so a client may safely resend after a lost answer.
        """
        if outcome not in APPEALS:
            raise LedgerError(f"unknown appeal outcome {outcome!r} (allowed: {', '.join(APPEALS)})")
        _check_aware(at, "at")
        with writing(self.engine) as conn:
            stored = _locked_violation(conn, violation_id)
            appeals = [e for e in stored.events if e.kind == "appeal"]
            if appeals:  # the one in force (a store from before this rule may hold several: the latest counts)
                first = appeals[-1]
                sent = {"outcome": outcome, "actor": actor, "why": why, "at": at if at_stated else first.at}
                kept = {"outcome": first.value, "actor": first.actor, "why": first.why, "at": first.at}
                if sent == kept:
                    return self._view(conn, stored.account_id, first.at)
                raise ConflictError(
                    [FieldError(name, f"the appeal has {_shown(kept[name])}, not {_shown(sent[name])}")
                     for name in kept if sent[name] != kept[name]],
                    f"conflict: violation {violation_id} was already appealed: {first.value} at "
                    f"{first.at.isoformat()} by {first.actor} (one appeal per violation)")
            _check_not_before(at, stored, "appeal")
            _append_event(conn, violation_id, at=at, kind="appeal", value=outcome, actor=actor, why=why)
            append_audit(conn, at=at, actor=actor, action="violation.appealed", entity="violation",
                         entity_id=violation_id, before={"appeal": stored.appeal}, after={"appeal": outcome}, why=why)
            return self._view(conn, stored.account_id, at)

    def complete_remedial(self, violation_id: str, *, completed_at: datetime, actor: str, why: str | None) -> dict:
        """Append a passed remedial step and the mapper's new decision for it; returns the health view afterwards.

        The mapper is re-run on the record the violation was first decided on, so only
        the remedial step can change the outcome (it lowers sellers' logistics
        sentences; for anything else the new decision repeats the old actions).
        """
        _check_aware(completed_at, "completed_at")
        with writing(self.engine) as conn:
            stored = _locked_violation(conn, violation_id)
            _check_not_before(completed_at, stored, "remedial step")
            done = stored.remedial_completed_at
            if done == completed_at:  # a retry: recorded already, answer as the first time
                return self._view(conn, stored.account_id, completed_at)
            if done is not None:
                raise ConflictError([FieldError("completed_at", f"the remedial step was already completed at "
                                                                f"{done.isoformat()}, not {completed_at.isoformat()}")],
                                    f"conflict: violation {violation_id}: remedial step already completed at "
                                    f"{done.isoformat()}")
            first = stored.decisions[0]
            decision = decide(completed_at, Account(stored.account_id, stored.role),
                              _as_violation(stored, completed_at), [past_from_json(p) for p in first.history],
                              self.policy)
            _append_event(conn, violation_id, at=completed_at, kind="remedial", value=completed_at.isoformat(),
                          actor=actor, why=why)
            _append_decision(conn, violation_id, decision, at=completed_at, actor=actor, cause="remedial",
                             history=list(first.history))
            append_audit(conn, at=completed_at, actor=actor, action="violation.remedial_completed",
                         entity="violation", entity_id=violation_id, before=stored.current.decision.to_dict(),
                         after=decision.to_dict(), why=why)
            return self._view(conn, stored.account_id, completed_at)

    # -- reading -------------------------------------------------------------

    def propose(self, account: Account, violation: Violation, as_of: datetime) -> Decision:
        """What recording this violation now would decide, from the stored record; writes nothing."""
        with reading(self.engine) as conn:
            found = load_account(conn, account.account_id)
        stored = found[1] if found else []
        history = [v.past() for v in known_history(stored, as_of)]
        return decide(as_of, account, violation, history, self.policy)

    def health(self, account_id: str, as_of: datetime) -> dict:
        """The account's health, counting violations, penalties in force and history as of `as_of` (ISO strings)."""
        _check_aware(as_of, "as_of")
        with reading(self.engine) as conn:
            return self._view(conn, account_id, as_of)

    def _view(self, conn: Connection, account_id: str, as_of: datetime) -> dict:
        found = load_account(conn, account_id)
        if found is None:  # a marketplace account with a clean record is healthy, not unknown
            role = conn.execute(select(T.market_accounts.c.role)
                                .where(T.market_accounts.c.account_id == account_id)).scalar()
            if role is None:
                raise NotFoundError(f"no account {account_id!r} in the ledger or the marketplace's accounts")
            found = (role, [])
        role, violations = found
        return health_view(Account(account_id, role), violations, as_of, self.policy)

    def audit_events(self, entity_id: str | None = None, after: int | None = None,
                     limit: int | None = None) -> list[dict]:
        """Audit events oldest first, optionally only those about one entity, only those after event id `after`
        and at most `limit` of them: the trail only grows and ids only increase, so paging by the last id seen
        is stable (no event skipped or repeated, whatever is appended meanwhile)."""
        a = T.audit_events
        query = select(a).order_by(a.c.id)
        if entity_id is not None:
            query = query.where(a.c.entity_id == entity_id)
        if after is not None:
            query = query.where(a.c.id > after)
        if limit is not None:
            query = query.limit(limit)
        with reading(self.engine) as conn:
            return [{**row._asdict(), "at": row.at.isoformat()} for row in conn.execute(query)]


# ---------------------------------------------------------------------------
# Checks, done before any transaction opens.

def _check_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise LedgerError(f"{name} must be a timezone-aware datetime, got {value!r}")


def _check_new(violation_id: str, account: Account, violation: Violation, as_of: datetime) -> None:
    """Refuse what would make the record wrong: only confirmed, well-formed, already-happened violations."""
    if not isinstance(violation_id, str) or not 0 < len(violation_id) <= 128:
        raise LedgerError(f"violation_id must be a string of 1 to 128 characters, got {violation_id!r}")
    if violation.stage != "confirmed":
        raise LedgerError(f"violation {violation_id} is {violation.stage}: only confirmed violations are recorded")
    if account.role not in V.ROLES:
        raise LedgerError(f"unknown role {account.role!r} (allowed: {', '.join(V.ROLES)})")
    if V.CATEGORY_FAMILY.get(violation.category) != violation.family:
        raise LedgerError(f"category {violation.category!r} is not in family {violation.family!r}")
    if violation.severity not in V.SEVERITIES:
        raise LedgerError(f"unknown severity {violation.severity!r} (allowed: {', '.join(V.SEVERITIES)})")
    _check_aware(as_of, "as_of")
    _check_aware(violation.occurred_at, "occurred_at")
    if violation.occurred_at > as_of:
        raise LedgerError(f"violation {violation_id} occurred at {violation.occurred_at.isoformat()}, "
                          f"after as_of {as_of.isoformat()}")
    if violation.remedial_completed_at is not None:
        raise LedgerError(f"violation {violation_id}: record it first, then complete the remedial step")


def _check_not_before(at: datetime, stored: StoredViolation, what: str) -> None:
    if at < stored.recorded_at:
        raise LedgerError(f"{what} at {at.isoformat()} precedes the recording of violation "
                          f"{stored.violation_id} at {stored.recorded_at.isoformat()}")


CONTENT = ("account_id", "role", "family", "category", "severity", "occurred_at", "as_of", "source_report_id",
           "model_versions")  # what a retry of a violation must repeat (record_violation says why)


def _content(account: Account, violation: Violation, as_of: datetime | None, source_report_id: str | None,
             model_versions: dict[str, str] | None) -> dict[str, Any]:
    """A violation's content as sent, by CONTENT's names; as_of None when it is not to be compared."""
    return {"account_id": account.account_id, "role": account.role, "family": violation.family,
            "category": violation.category, "severity": violation.severity, "occurred_at": violation.occurred_at,
            "as_of": as_of, "source_report_id": source_report_id, "model_versions": model_versions or None}


def _retried(stored: StoredViolation, sent: dict[str, Any]) -> Recorded:
    """The stored outcome for a retry; a reused id with other content is a ConflictError naming the fields."""
    kept = {"account_id": stored.account_id, "role": stored.role, "family": stored.family,
            "category": stored.category, "severity": stored.severity, "occurred_at": stored.occurred_at,
            "as_of": stored.recorded_at if sent["as_of"] is not None else None,
            "source_report_id": stored.source_report_id, "model_versions": stored.model_versions or None}
    differ = [name for name in CONTENT if sent[name] != kept[name]]
    if differ:
        raise ConflictError([FieldError(name, f"violation {stored.violation_id} is stored with "
                                              f"{_shown(kept[name])}, not {_shown(sent[name])}") for name in differ],
                            f"conflict: violation {stored.violation_id} is already recorded with other content; "
                            "a retry must repeat the original")
    return Recorded(stored.violation_id, stored.decisions[0].decision, created=False)


def _shown(value: Any) -> str:
    """A stored or sent value in a conflict's message."""
    return value.isoformat() if isinstance(value, datetime) else repr(value)


# ---------------------------------------------------------------------------
# Writing rows (INSERT only).

def _lock_account(conn: Connection, account: Account, as_of: datetime) -> str:
    """Create the account on first sight and lock its row for this transaction; returns its stored role."""
    insert_if_absent(conn, T.accounts, {"account_id": account.account_id, "role": account.role,
                                        "first_recorded_at": as_of})
    query = select(T.accounts.c.role).where(T.accounts.c.account_id == account.account_id).with_for_update()
    return conn.execute(query).scalar_one()


def _locked_violation(conn: Connection, violation_id: str) -> StoredViolation:
    """The stored violation, read after locking its account so no other write to that account interleaves."""
    v = T.violations
    account_id = conn.execute(select(v.c.account_id).where(v.c.violation_id == violation_id)).scalar()
    if account_id is None:
        raise NotFoundError(f"no violation {violation_id!r} in the ledger")
    conn.execute(select(T.accounts.c.account_id).where(T.accounts.c.account_id == account_id).with_for_update())
    return load_violation(conn, violation_id)


def _as_violation(stored: StoredViolation, remedial_completed_at: datetime | None) -> Violation:
    return Violation(family=stored.family, category=stored.category, severity=stored.severity,
                     occurred_at=stored.occurred_at, remedial_completed_at=remedial_completed_at)


def _append_decision(conn: Connection, violation_id: str, decision: Decision, *, at: datetime, actor: str,
                     cause: str, history: list[dict[str, Any]]) -> None:
    values = to_json(decision.to_dict())
    conn.execute(insert(T.decisions).values(violation_id=violation_id, decided_at=at, decided_by=actor, cause=cause,
                                            actions=values["actions"], account_health=decision.account_health,
                                            reasons=values["reasons"], policy_version=decision.policy_version,
                                            rung=decision.rung, points=decision.points, history=history))


def _append_event(conn: Connection, violation_id: str, *, at: datetime, kind: str, value: str, actor: str,
                  why: str | None) -> None:
    conn.execute(insert(T.violation_events).values(violation_id=violation_id, at=at, kind=kind, value=value,
                                                   actor=actor, why=why))


# ---------------------------------------------------------------------------
# The marketplace's own enforcements (the data contract's enforcements table), for the features and the record.

IMPORTED = "imported"  # policy_version of a decision the marketplace took itself, before or outside Docket


def record_enforcements(conn: Connection, rows: list[dict], *, seqs: range, actor: str, policy: Policy,
                        accounts: dict[str, str]) -> None:
    """Store the marketplace's own enforcements as violations with the decision taken then (not re-decided by
    the mapper), so records, health and proposed penalties start from the real past.

    `rows` are checked enforcements (contract columns), `accounts` each account's role. Health at each decision
    is worked out from the account's record up to it, stored ones included."""
    if not rows:
        return
    rows = sorted(rows, key=lambda r: (r["decided_at"], r["violation_id"]))
    seq_of = dict(zip((r["violation_id"] for r in rows), seqs))
    pasts = _stored_pasts(conn, sorted(accounts))
    for account_id, role in accounts.items():
        first = min(r["decided_at"] for r in rows if r["account_id"] == account_id)
        insert_if_absent(conn, T.accounts, {"account_id": account_id, "role": role,
                                            "first_recorded_at": _py(first)})
    violations, decisions = [], []
    for r in rows:
        actions = (Action(r["action"], r["action_days"] or None),)
        at = _py(r["decided_at"])
        record = pasts.setdefault(r["account_id"], [])
        record.append(PastViolation(_py(r["occurred_at"]), r["family"], r["category"], r["severity"], actions))
        health = account_health(at, Account(r["account_id"], accounts[r["account_id"]]), record, policy)
        violations.append({"violation_id": r["violation_id"], "account_id": r["account_id"],
                           "role": accounts[r["account_id"]], "family": r["family"], "category": r["category"],
                           "severity": r["severity"], "occurred_at": _py(r["occurred_at"]), "recorded_at": at,
                           "recorded_by": actor, "source_report_id": None, "model_versions": None,
                           "seq": seq_of[r["violation_id"]]})
        days = f" for {r['action_days']} days" if r["action_days"] else ""
        decisions.append({"violation_id": r["violation_id"], "decided_at": at, "decided_by": actor,
                          "cause": "recorded", "actions": [a.to_dict() for a in actions], "account_health": health,
                          "reasons": [f"taken by the marketplace: {r['action']}{days} (imported enforcement)"],
                          "policy_version": IMPORTED, "rung": r["action"], "points": 0, "history": []})
    insert_rows(conn, T.violations, violations)
    insert_rows(conn, T.decisions, decisions)


def _py(value: Any) -> datetime:
    return value.to_pydatetime() if hasattr(value, "to_pydatetime") else value


def _stored_pasts(conn: Connection, account_ids: list[str]) -> dict[str, list[PastViolation]]:
    """The stored record of those of these accounts the ledger knows (a first import knows none)."""
    known = set()
    for start in range(0, len(account_ids), 500):
        part = account_ids[start:start + 500]
        known |= {r[0] for r in conn.execute(select(T.accounts.c.account_id).where(T.accounts.c.account_id.in_(part)))}
    return {a: [v.past() for v in load_account(conn, a)[1]] for a in sorted(known)}


def enforcements_query(ids: list[str] | None = None, since: int | None = None) -> Select:
    """Violations as the data contract's enforcements: decided when first decided, with that decision's main
    action (the first it lists; a warning if none) and its days (0 when not time-limited), read from the JSON
    in SQL so a bulk read needs no Python per row."""
    v, d = T.violations.c, T.decisions.c
    main = d.actions[0]
    query = (select(v.violation_id, v.account_id, v.occurred_at, d.decided_at, v.family, v.category, v.severity,
                    func.coalesce(main["type"].as_string(), "warning").label("action"),
                    func.coalesce(main["days"].as_integer(), 0).label("action_days"))
             .join_from(T.violations, T.decisions, (d.violation_id == v.violation_id) & (d.cause == "recorded"))
             .order_by(v.seq, v.violation_id))
    if ids is not None:
        query = query.where(v.violation_id.in_(ids))
    if since is not None:
        query = query.where(v.seq > since)
    return query


def enforcement_rows(conn: Connection, ids: list[str]) -> list[dict]:
    """These violations as enforcements (enforcements_query), one dict each."""
    return [dict(row) for row in conn.execute(enforcements_query(ids)).mappings()]
