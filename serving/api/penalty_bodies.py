"""Parsing penalty and ledger request bodies into the mapper's types, one message per bad field."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from features import vocabulary as V
from features.contract import ID_MAX, NAME_MAX, TEXT_MAX
from policy.penalty import APPEALS, STAGES, Account, Action, PastViolation, Violation
from serving.input_checks import FieldError, RequestError, check_text, parse_timestamp
from serving.queue.cases import case_id_for

# The longest text each field of a request object may hold (the data contract's limits); any other text field
# is an identifier (ID_MAX, the store's String(128) id columns).
TEXT_LIMITS = {"why": TEXT_MAX, "notes": TEXT_MAX, "actor": NAME_MAX, "case_id": len(case_id_for("x" * ID_MAX))}


def _shown(value: Any) -> str:
    """A value quoted in a message, cut short: a message never echoes a megabyte back."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


class _Fields:
    """Collects field errors while reading one JSON object.

    A field is "missing" whenever the object is there (an empty `{}` too: every required field of it is named);
    an object that is itself missing (null) or not an object is named once, not field by field."""

    def __init__(self, obj: Any, where: str, errors: list[FieldError]):
        self.where, self.errors = where, errors
        self.present = isinstance(obj, dict)
        self.obj = obj if self.present else {}
        if not self.present:
            errors.append(FieldError(where or "body", "missing field" if obj is None else
                                     f"expected an object, got {type(obj).__name__}"))

    def _path(self, name: str) -> str:
        return f"{self.where}.{name}" if self.where else name

    def text(self, name: str, required: bool = True) -> str | None:
        value = self.obj.get(name)
        if value is None:
            if required and self.present:
                self.errors.append(FieldError(self._path(name), "missing field"))
            return None
        if not isinstance(value, str) or not value:
            self.errors.append(FieldError(self._path(name), f"expected a non-empty string, got {_shown(value)}"))
            return None
        return check_text(value, TEXT_LIMITS.get(name, ID_MAX), self._path(name), self.errors)

    def choice(self, name: str, allowed: tuple[str, ...], required: bool = True, default: str | None = None) -> str | None:
        value = self.obj.get(name, default)
        if value is None:
            if required and self.present:
                self.errors.append(FieldError(self._path(name), "missing field"))
            return None
        if value not in allowed:
            self.errors.append(FieldError(self._path(name), f"unknown value {_shown(value)} (allowed: {', '.join(allowed)})"))
            return None
        return value

    def time(self, name: str, required: bool = True) -> datetime | None:
        value = self.obj.get(name)
        if value is None:
            if required and self.present:
                self.errors.append(FieldError(self._path(name), "missing field"))
            return None
        ts = parse_timestamp(value, self._path(name), self.errors)
        return ts.to_pydatetime() if ts is not None else None


def _category(f: _Fields, family: str | None) -> str | None:
    category = f.choice("category", V.CATEGORIES)
    if category and family and V.family_of(category) != family:
        f.errors.append(FieldError(f._path("category"), f"'{category}' belongs to {V.family_of(category)}, not {family}"))
    return category


def _not_after(value: datetime | None, as_of: datetime | None, field: str, errors: list[FieldError]) -> None:
    if value is not None and as_of is not None and value > as_of:
        errors.append(FieldError(field, f"{value.isoformat()} is after as_of {as_of.isoformat()}"))


def _actions(raw: Any, where: str, errors: list[FieldError]) -> tuple[Action, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(FieldError(where, f"expected a list of actions, got {type(raw).__name__}"))
        return ()
    out = []
    for i, item in enumerate(raw):
        f = _Fields(item, f"{where}[{i}]", errors)
        kind = f.choice("type", V.ACTIONS)
        days = f.obj.get("days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days <= 0):
            errors.append(FieldError(f"{where}[{i}].days", f"expected a positive whole number of days, got {_shown(days)}"))
            days = None
        feature = f.text("feature", required=False)
        if kind:
            out.append(Action(kind, days, feature))
    return tuple(out)


def parse_account(raw: Any, errors: list[FieldError], where: str = "account") -> Account | None:
    f = _Fields(raw, where, errors)
    account_id, role = f.text("account_id"), f.choice("role", V.ROLES)
    return Account(account_id, role) if account_id and role else None


def parse_violation(raw: Any, as_of: datetime | None, errors: list[FieldError], where: str = "violation") -> Violation | None:
    f = _Fields(raw, where, errors)
    family = f.choice("family", V.FAMILIES)
    category = _category(f, family)
    severity = f.choice("severity", V.SEVERITIES)
    occurred = f.time("occurred_at")
    stage = f.choice("stage", STAGES, default="confirmed")
    remedial = f.time("remedial_completed_at", required=False)
    _not_after(occurred, as_of, f"{where}.occurred_at", errors)
    _not_after(remedial, as_of, f"{where}.remedial_completed_at", errors)
    if remedial and occurred and remedial < occurred:
        errors.append(FieldError(f"{where}.remedial_completed_at", "is before the violation occurred"))
    if None in (family, category, severity, occurred, stage):
        return None
    return Violation(family, category, severity, occurred, stage, remedial)


def parse_history(raw: Any, as_of: datetime | None, errors: list[FieldError]) -> tuple[PastViolation, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.append(FieldError("history", f"expected a list, got {type(raw).__name__}"))
        return ()
    out = []
    for i, item in enumerate(raw):
        where = f"history[{i}]"
        f = _Fields(item, where, errors)
        occurred = f.time("occurred_at")
        family = f.choice("family", V.FAMILIES)
        category = _category(f, family)
        severity = f.choice("severity", V.SEVERITIES)
        actions = _actions(f.obj.get("actions"), f"{where}.actions", errors)
        appeal = f.choice("appeal", APPEALS, required=False)
        _not_after(occurred, as_of, f"{where}.occurred_at", errors)
        if None not in (occurred, family, category, severity):
            out.append(PastViolation(occurred, family, category, severity, actions, appeal))
    return tuple(out)


PENALTY_FIELDS = ("as_of", "account", "violation", "history")  # a /penalty body's fields, in this order


def parse_penalty_request(as_of: Any, account: Any, violation: Any, history: Any):
    """(as_of, Account, Violation, history) from a /penalty body; raises RequestError naming every bad field."""
    errors: list[FieldError] = []
    when = _Fields({"as_of": as_of}, "", errors).time("as_of")
    acc = parse_account(account, errors)
    vio = parse_violation(violation, when, errors)
    past = parse_history(history, when, errors)
    if errors:
        raise RequestError(errors)
    return when, acc, vio, past
