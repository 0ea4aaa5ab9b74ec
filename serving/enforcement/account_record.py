"""An account's enforcement record as read back from the ledger, and what it means at a given time.

Loading turns rows into frozen dataclasses; every view after that (what the
mapper sees as history, which penalties are in force, the health dict) is a pure
function of those and an `as_of`, so the same rows and time give the same answer.
Only what was known at `as_of` is used: violations recorded, decisions made and
events dated up to then.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, select

from policy.penalty import (
    Account,
    Action,
    Decision,
    PastViolation,
    Policy,
    account_health,
    still_counts,
)
from serving.store import tables as T

# Actions in force until lifted, with no end date; other actions without days (a warning) are notices.
PERMANENT = frozenset({"ban", "revoke_selling"})


@dataclass(frozen=True)
class StoredDecision:
    id: int
    decided_at: datetime
    decided_by: str
    cause: str  # recorded | remedial | appeal
    decision: Decision
    history: tuple[dict, ...]  # the record the mapper was given, as stored (see past_to_json)

    def to_dict(self) -> dict:
        return {"id": self.id, "cause": self.cause, "decided_at": self.decided_at.isoformat(),
                "decided_by": self.decided_by, **self.decision.to_dict()}


@dataclass(frozen=True)
class StoredEvent:
    id: int
    at: datetime
    kind: str  # appeal | remedial
    value: str
    actor: str
    why: str | None

    def to_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "value": self.value, "at": self.at.isoformat(),
                "actor": self.actor, "why": self.why}


@dataclass(frozen=True)
class StoredViolation:
    violation_id: str
    account_id: str
    role: str
    family: str
    category: str
    severity: str
    occurred_at: datetime
    recorded_at: datetime
    recorded_by: str
    source_report_id: str | None
    model_versions: dict | None
    decisions: tuple[StoredDecision, ...] = ()  # oldest first; the last is the current decision
    events: tuple[StoredEvent, ...] = ()  # oldest first

    def known_at(self, as_of: datetime) -> StoredViolation | None:
        """The violation as it stood at `as_of` (None if it was recorded later)."""
        if self.recorded_at > as_of:
            return None
        return replace(self, decisions=tuple(d for d in self.decisions if d.decided_at <= as_of),
                       events=tuple(e for e in self.events if e.at <= as_of))

    @property
    def current(self) -> StoredDecision:
        return self.decisions[-1]

    @property
    def appeal(self) -> str | None:
        """The latest appeal outcome: re-appeals are allowed and the last one wins."""
        outcomes = [e.value for e in self.events if e.kind == "appeal"]
        return outcomes[-1] if outcomes else None

    @property
    def remedial_completed_at(self) -> datetime | None:
        done = [e.at for e in self.events if e.kind == "remedial"]
        return done[-1] if done else None

    def past(self) -> PastViolation:
        """This violation as the mapper's history item: current decision's actions, latest appeal."""
        return PastViolation(occurred_at=self.occurred_at, family=self.family, category=self.category,
                             severity=self.severity, actions=self.current.decision.actions, appeal=self.appeal)

    def active_penalties(self, as_of: datetime) -> list[dict]:
        """Penalties in force at `as_of`: the current decision's, unless the violation was overturned.

        Time-limited ones run from the violation's first decision: a remedial decision
        changes which actions are in force from its own time on, but never restarts a
        sentence, so a lower sentence cannot end later than the one it replaces.
        """
        if not self.decisions or self.appeal == "overturned":
            return []
        started = self.decisions[0].decided_at
        out = []
        for action in self.current.decision.actions:
            if action.days is not None:
                ends: datetime | None = started + timedelta(days=action.days)
                if as_of >= ends:
                    continue
            elif action.type not in PERMANENT:
                continue
            else:
                ends = None
            out.append({"violation_id": self.violation_id, "type": action.type, "days": action.days,
                        "feature": action.feature, "started_at": started.isoformat(),
                        "ends_at": ends.isoformat() if ends else None})
        return out

    def to_dict(self) -> dict:
        return {
            "violation_id": self.violation_id, "account_id": self.account_id, "role": self.role,
            "family": self.family, "category": self.category, "severity": self.severity,
            "occurred_at": self.occurred_at.isoformat(), "recorded_at": self.recorded_at.isoformat(),
            "recorded_by": self.recorded_by, "source_report_id": self.source_report_id,
            "model_versions": self.model_versions, "appeal": self.appeal,
            "remedial_completed_at": _iso(self.remedial_completed_at),
            "decisions": [d.to_dict() for d in self.decisions],
            "events": [e.to_dict() for e in self.events],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# ---------------------------------------------------------------------------
# The mapper's history, stored with each decision so it can be re-run.

def past_to_json(violation_id: str, past: PastViolation) -> dict:
    return {"violation_id": violation_id, "occurred_at": past.occurred_at.isoformat(), "family": past.family,
            "category": past.category, "severity": past.severity,
            "actions": [a.to_dict() for a in past.actions], "appeal": past.appeal}


def past_from_json(data: dict) -> PastViolation:
    return PastViolation(occurred_at=datetime.fromisoformat(data["occurred_at"]), family=data["family"],
                         category=data["category"], severity=data["severity"],
                         actions=_actions(data["actions"]), appeal=data["appeal"])


def _actions(data: Sequence[dict]) -> tuple[Action, ...]:
    return tuple(Action(type=a["type"], days=a.get("days"), feature=a.get("feature")) for a in data)


# ---------------------------------------------------------------------------
# Loading.

def load_violation(conn: Connection, violation_id: str) -> StoredViolation | None:
    found = _load(conn, T.violations.c.violation_id == violation_id)
    return found[0] if found else None


def load_account(conn: Connection, account_id: str) -> tuple[str, list[StoredViolation]] | None:
    """The account's role and every violation recorded for it, oldest first; None for an unknown account."""
    role = conn.execute(select(T.accounts.c.role).where(T.accounts.c.account_id == account_id)).scalar()
    if role is None:
        return None
    return role, _load(conn, T.violations.c.account_id == account_id)


def _load(conn: Connection, where: ColumnElement[bool]) -> list[StoredViolation]:
    v, d, e = T.violations, T.decisions, T.violation_events
    ids = select(v.c.violation_id).where(where)
    decisions: dict[str, list[StoredDecision]] = defaultdict(list)
    for row in conn.execute(select(d).where(d.c.violation_id.in_(ids)).order_by(d.c.decided_at, d.c.id)):
        decisions[row.violation_id].append(_decision(row))
    events: dict[str, list[StoredEvent]] = defaultdict(list)
    for row in conn.execute(select(e).where(e.c.violation_id.in_(ids)).order_by(e.c.at, e.c.id)):
        events[row.violation_id].append(StoredEvent(row.id, row.at, row.kind, row.value, row.actor, row.why))
    rows = conn.execute(select(v).where(where).order_by(v.c.occurred_at, v.c.recorded_at, v.c.violation_id))
    return [StoredViolation(**{c: getattr(row, c) for c in v.c.keys() if c != "seq"},
                            decisions=tuple(decisions[row.violation_id]), events=tuple(events[row.violation_id]))
            for row in rows]


def _decision(row: Any) -> StoredDecision:
    decision = Decision(actions=_actions(row.actions), account_health=row.account_health,
                        reasons=tuple(row.reasons), policy_version=row.policy_version, rung=row.rung,
                        points=row.points)
    return StoredDecision(row.id, row.decided_at, row.decided_by, row.cause, decision, tuple(row.history))


# ---------------------------------------------------------------------------
# The account's view.

def known_history(violations: Sequence[StoredViolation], as_of: datetime) -> list[StoredViolation]:
    """The violations recorded (with a decision) by `as_of`, each as it stood then."""
    known = (v.known_at(as_of) for v in violations)
    return [v for v in known if v is not None and v.decisions]


def health_view(account: Account, violations: Sequence[StoredViolation], as_of: datetime, policy: Policy) -> dict:
    """Health, counting violations, penalties in force and the full history of the account at `as_of`."""
    known = known_history(violations, as_of)
    pasts = [v.past() for v in known]
    return {
        "account_id": account.account_id,
        "role": account.role,
        "as_of": as_of.isoformat(),
        "account_health": account_health(as_of, account, pasts, policy),
        "counting_violations": [v.violation_id for v, p in zip(known, pasts) if still_counts(as_of, p, policy)],
        "active_penalties": [p for v in known for p in v.active_penalties(as_of)],
        "history": [v.to_dict() for v in known],
    }
