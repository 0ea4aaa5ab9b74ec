"""The penalty mapper: a pure function from (account, violation, record, policy) to a decision.

No clock, no randomness, no I/O: `as_of` is an argument, the policy is data
(`policy/policy.yaml`, versioned by a hash of its content), and the same
inputs give the same decision byte for byte. The ledger and the service call
it; they own every side effect.

How a decision is reached (every number lives in the policy file):
1. Only violations that still count are considered: not overturned on appeal
   and occurred within the expiry window (180 days) before `as_of`.
   Suspensions and bans never expire from the record.
2. Points = the severity points of the counting violations plus this one:
   violations are cumulative, so repeated minor ones reach a suspension.
3. The family's ladder gives the highest rung whose `min_points` is reached.
   A suspension or ban already on the record is a floor: further violations
   get at least that rung again.
4. A seller who completed the remedial step for a logistics violation goes one
   rung down. Behavioural sentences cannot be reduced.
5. Category extras (reduced discoverability, feature restrictions) are added;
   seller-only actions are dropped for buyers.
A severe violation still under investigation gets only an investigation hold.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import yaml

from features import vocabulary as V

HEALTH_STATES = ("excellent", "good", "fair", "poor", "very_poor")
APPEALS = ("upheld", "overturned")
STAGES = ("confirmed", "under_investigation")


class PolicyError(ValueError):
    """The policy file breaks a rule the source documents set (e.g. a suspension over 30 days)."""


@dataclass(frozen=True)
class Action:
    type: str
    days: int | None = None
    feature: str | None = None

    def to_dict(self) -> dict:
        out: dict = {"type": self.type}
        if self.days is not None:
            out["days"] = self.days
        if self.feature is not None:
            out["feature"] = self.feature
        return out


@dataclass(frozen=True)
class Account:
    account_id: str
    role: str  # buyer | seller


@dataclass(frozen=True)
class Violation:
    family: str
    category: str
    severity: str
    occurred_at: datetime
    stage: str = "confirmed"
    remedial_completed_at: datetime | None = None


@dataclass(frozen=True)
class PastViolation:
    occurred_at: datetime
    family: str
    category: str
    severity: str
    actions: tuple[Action, ...] = ()
    appeal: str | None = None  # None | upheld | overturned


@dataclass(frozen=True)
class Decision:
    actions: tuple[Action, ...]
    account_health: str
    reasons: tuple[str, ...]
    policy_version: str
    rung: str  # the ladder rung applied ("none" when nothing is to be done)
    points: int = 0

    def to_dict(self) -> dict:
        return {
            "actions": [a.to_dict() for a in self.actions],
            "account_health": self.account_health,
            "reasons": list(self.reasons),
            "policy_version": self.policy_version,
            "rung": self.rung,
            "points": self.points,
        }


@dataclass(frozen=True)
class Rung:
    name: str
    min_points: int
    actions: tuple[Action, ...]

    @property
    def suspends(self) -> bool:
        return any(a.type in ("suspension", "ban") for a in self.actions)


@dataclass(frozen=True)
class Policy:
    version: str
    expiry_days: int
    permanent_record: frozenset[str]
    max_days: dict[str, int]
    seller_only: frozenset[str]
    severity_points: dict[str, int]
    ladders: dict[str, tuple[Rung, ...]]
    category_extras: dict[str, tuple[Action, ...]]
    hold_severities: frozenset[str]
    remedial_rungs_down: int
    remedial_families: frozenset[str]
    health: dict[str, dict]


# ---------------------------------------------------------------------------
# Loading and checking the policy file.

def _action(spec: dict, where: str) -> Action:
    if spec.get("type") not in V.ACTIONS:
        raise PolicyError(f"{where}: unknown action type {spec.get('type')!r} (allowed: {', '.join(V.ACTIONS)})")
    return Action(type=spec["type"], days=spec.get("days"), feature=spec.get("feature"))


def _check_days(action: Action, max_days: dict[str, int], where: str) -> None:
    limit = max_days.get(action.type)
    if limit is not None and (action.days is None or not 0 < action.days <= limit):
        raise PolicyError(f"{where}: {action.type} needs days between 1 and {limit}, got {action.days}")


def parse_policy(text: str) -> Policy:
    """A Policy from the YAML text, versioned by the text's hash; raises PolicyError on a broken rule."""
    raw = yaml.safe_load(text)
    max_days = {k: int(v) for k, v in raw["max_days"].items()}
    ladders: dict[str, tuple[Rung, ...]] = {}
    for family in V.FAMILIES:
        rungs = []
        for i, r in enumerate(raw["ladders"][family]):
            where = f"ladders.{family}[{i}]"
            actions = tuple(_action(a, where) for a in r["actions"])
            for a in actions:
                _check_days(a, max_days, where)
                if family == "behavioral" and a.type == "suspension" and a.days not in raw["behavioral_suspension_days"]:
                    raise PolicyError(f"{where}: behavioural suspensions are {raw['behavioral_suspension_days']} days, got {a.days}")
            rungs.append(Rung(name=r["name"], min_points=int(r["min_points"]), actions=actions))
        if [r.min_points for r in rungs] != sorted({r.min_points for r in rungs}) or rungs[0].min_points != 0:
            raise PolicyError(f"ladders.{family}: min_points must start at 0 and strictly increase")
        ladders[family] = tuple(rungs)
    extras = {}
    for category, specs in (raw.get("category_extras") or {}).items():
        if category not in V.CATEGORY_FAMILY:
            raise PolicyError(f"category_extras: unknown category {category!r}")
        extras[category] = tuple(_action(a, f"category_extras.{category}") for a in specs)
        for a in extras[category]:
            _check_days(a, max_days, f"category_extras.{category}")
    points = {s: int(raw["severity_points"][s]) for s in V.SEVERITIES}
    if [points[s] for s in V.SEVERITIES] != sorted(points.values()):
        raise PolicyError("severity_points must not decrease with severity")
    return Policy(
        version=hashlib.sha256(text.encode()).hexdigest()[:12],
        expiry_days=int(raw["expiry_days"]),
        permanent_record=frozenset(raw["permanent_record"]),
        max_days=max_days,
        seller_only=frozenset(raw["seller_only"]),
        severity_points=points,
        ladders=ladders,
        category_extras=extras,
        hold_severities=frozenset(raw["investigation_hold_severities"]),
        remedial_rungs_down=int(raw["remedial"]["rungs_down"]),
        remedial_families=frozenset(raw["remedial"]["families"]),
        health={k: dict(v) for k, v in raw["health"].items()},
    )



# ---------------------------------------------------------------------------
# The record as the mapper sees it.

def still_counts(as_of: datetime, past: PastViolation, policy: Policy) -> bool:
    """Not overturned, and occurred within the expiry window before as_of."""
    return past.appeal != "overturned" and past.occurred_at > as_of - timedelta(days=policy.expiry_days)


def _record_actions(as_of: datetime, history: Sequence[PastViolation], policy: Policy) -> list[Action]:
    """Actions on the record: all actions of counting violations, permanent ones of any not overturned."""
    out: list[Action] = []
    for past in history:
        if past.appeal == "overturned" or past.occurred_at > as_of:
            continue
        counting = still_counts(as_of, past, policy)
        out.extend(a for a in past.actions if counting or a.type in policy.permanent_record)
    return out


def _health(record: Sequence[Action], counting: int, policy: Policy) -> str:
    for state in ("very_poor", "poor", "fair", "good"):
        rule = policy.health.get(state, {})
        if rule.get("ban") and any(a.type == "ban" for a in record):
            return state
        if rule.get("revoke_selling") and any(a.type == "revoke_selling" for a in record):
            return state
        days = rule.get("suspension_days_at_least")
        if days is not None and any(a.type == "suspension" and (a.days or 0) >= days for a in record):
            return state
        at_least = rule.get("counting_violations_at_least")
        if at_least is not None and counting >= at_least:
            return state
    return "excellent"


def account_health(as_of: datetime, account: Account, history: Sequence[PastViolation], policy: Policy) -> str:
    """Health of the account's record as of `as_of` (see `health` in the policy file)."""
    counting = [p for p in history if p.occurred_at <= as_of and still_counts(as_of, p, policy)]
    return _health(_record_actions(as_of, history, policy), len(counting), policy)


# ---------------------------------------------------------------------------
# The decision.

def _for_role(actions: Sequence[Action], role: str, policy: Policy, reasons: list[str]) -> tuple[Action, ...]:
    if role == "seller":
        return tuple(actions)
    dropped = [a.type for a in actions if a.type in policy.seller_only]
    if dropped:
        reasons.append(f"seller-only actions not applied to a buyer: {', '.join(dropped)} (seller_only)")
    return tuple(a for a in actions if a.type not in policy.seller_only)


def _fmt(a: Action) -> str:
    parts = [a.type] + ([a.feature] if a.feature else []) + ([f"{a.days} days"] if a.days else [])
    return parts[0] if len(parts) == 1 else f"{parts[0]} ({', '.join(parts[1:])})"


def decide(as_of: datetime, account: Account, violation: Violation, history: Sequence[PastViolation],
           policy: Policy) -> Decision:
    """The proportional, cumulative decision for one violation (see the module docstring)."""
    reasons: list[str] = []
    earlier = [p for p in history if p.occurred_at <= as_of]
    counting = [p for p in earlier if still_counts(as_of, p, policy)]
    record = _record_actions(as_of, earlier, policy)

    if violation.stage == "under_investigation":
        if violation.severity in policy.hold_severities:
            actions = (Action("investigation_hold"),)
            reasons.append(f"{violation.severity} {violation.category} under investigation: account on hold "
                           f"until it closes (investigation_hold_severities)")
            rung = "investigation_hold"
        else:
            actions, rung = (), "none"
            reasons.append(f"{violation.severity} {violation.category} under investigation: no action before "
                           f"the outcome (holds are for {', '.join(sorted(policy.hold_severities))})")
        health = _health(record, len(counting), policy)
        return Decision(actions, health, tuple(reasons), policy.version, rung, 0)

    prior_points = sum(policy.severity_points[p.severity] for p in counting)
    own = policy.severity_points[violation.severity]
    points = prior_points + own
    reasons.append(f"{len(counting)} earlier violation(s) still count (last {policy.expiry_days} days, "
                   f"not overturned): {prior_points} points; this {violation.severity} {violation.category} "
                   f"adds {own} (severity_points): {points} in all")

    ladder = policy.ladders[violation.family]
    index = max(i for i, r in enumerate(ladder) if r.min_points <= points)
    reasons.append(f"ladders.{violation.family}: '{ladder[index].name}' applies from {ladder[index].min_points} points")

    if any(a.type == "ban" for a in record):
        floor = len(ladder) - 1
        why = "a ban is on the record"
    elif any(a.type == "suspension" for a in record):
        floor = min(i for i, r in enumerate(ladder) if r.suspends)
        why = "a suspension is on the record (it never expires)"
    else:
        floor = 0
    if floor > index:
        index = floor
        reasons.append(f"{why}: at least '{ladder[index].name}' (permanent_record)")

    remedial = violation.remedial_completed_at
    if (remedial is not None and remedial <= as_of and violation.family in policy.remedial_families
            and account.role == "seller" and index > 0):
        index = max(index - policy.remedial_rungs_down, 0)
        reasons.append(f"remedial step completed {remedial.date().isoformat()}: reduced to '{ladder[index].name}' "
                       f"(remedial; {violation.family} sentences can be reduced)")
    elif remedial is not None and violation.family not in policy.remedial_families:
        reasons.append(f"remedial step does not reduce a {violation.family} sentence (remedial.families)")

    rung = ladder[index]
    actions = list(rung.actions)
    extras = policy.category_extras.get(violation.category, ())
    if extras and rung.name != "ban":
        actions.extend(extras)
        reasons.append(f"category_extras.{violation.category}: adds {', '.join(_fmt(a) for a in extras)}")
    final = _for_role(actions, account.role, policy, reasons) or (Action("warning"),)
    health = _health(record + list(final), len(counting) + 1, policy)
    reasons.append(f"decision: {', '.join(_fmt(a) for a in final)}; account health {health}")
    return Decision(final, health, tuple(reasons), policy.version, rung.name, points)
