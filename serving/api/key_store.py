"""API keys in the store: created (optionally expiring), listed, revoked; every change an audit event.

Keys look like `dk_<key id>_<secret>`; only a SHA-256 of the secret is stored (the secret is 192 random bits, so
a slow hash adds nothing). The key id is not a secret: it names the key in the audit trail, in `docket keys
list` and in the logs. serving/api/auth.py checks keys on every request against what is stored here.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, insert, or_, select, update

from serving.enforcement.ledger import NotFoundError
from serving.store import tables as T
from serving.store.db import append_audit, reading, writing

ROLES = ("intake", "investigator", "admin")
LONGEST_LIFETIME = timedelta(days=3650)  # an expiry further out than this is a typo, not a plan
_DURATION = re.compile(r"^\s*(\d{1,6})\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class KeyError_(ValueError):
    """A key request that cannot be honoured (unknown role, an expiry in the past or too far out)."""


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_duration(text: str) -> timedelta:
    """'30d', '12h', '90m', '45s' as a timedelta; KeyError_ for anything else."""
    match = _DURATION.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise KeyError_(f"expected a lifetime such as 30d, 12h, 90m or 45s, got {text!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def check_expiry(expires_at: datetime | None, now: datetime) -> None:
    """An expiry must have a zone, lie in the future and within LONGEST_LIFETIME."""
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise KeyError_("expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z)")
    if expires_at <= now:
        raise KeyError_(f"expires_at {expires_at.isoformat()} is not in the future")
    if expires_at - now > LONGEST_LIFETIME:
        raise KeyError_(f"expires_at is more than {LONGEST_LIFETIME.days} days away")


def create_key(engine: Engine, role: str, *, actor: str, now: datetime, expires_at: datetime | None = None) -> str:
    """A new key for `role`, valid until `expires_at` (None: until revoked); the plain key is returned once and
    never stored."""
    if role not in ROLES:
        raise KeyError_(f"unknown role '{role}' (allowed: {', '.join(ROLES)})")
    check_expiry(expires_at, now)
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    with writing(engine) as conn:
        conn.execute(insert(T.api_keys).values(key_id=key_id, key_hash=digest(secret), role=role, created_at=now,
                                               created_by=actor, expires_at=expires_at))
        append_audit(conn, at=now, actor=actor, action="key_created", entity="api_key", entity_id=key_id,
                     before=None, after={"role": role, "expires_at": expires_at}, why=None)
    return f"dk_{key_id}_{secret}"


def revoke_key(engine: Engine, key_id: str, *, actor: str, now: datetime) -> dict:
    """Revoke a key; it is refused from the next request on (auth reads the key's row on every request).

    Revoking a revoked key changes nothing and answers the first revocation (so a retry is safe); an unknown id is
    NotFoundError. Returns the key as `list_keys` shows it."""
    k = T.api_keys
    with writing(engine) as conn:
        row = conn.execute(select(k.c.revoked_at).where(k.c.key_id == key_id).with_for_update()).first()
        if row is None:
            raise NotFoundError(f"no API key {key_id!r}")
        if row.revoked_at is None:
            conn.execute(update(k).where(k.c.key_id == key_id).values(revoked_at=now))
            append_audit(conn, at=now, actor=actor, action="key_revoked", entity="api_key", entity_id=key_id,
                         before={"revoked_at": None}, after={"revoked_at": now}, why=None)
        shown = conn.execute(select(*_SHOWN).where(k.c.key_id == key_id)).one()
    return _as_dict(shown)


_SHOWN = (T.api_keys.c.key_id, T.api_keys.c.role, T.api_keys.c.created_at, T.api_keys.c.created_by,
          T.api_keys.c.expires_at, T.api_keys.c.revoked_at)


def _as_dict(row) -> dict:
    return {c: (v.isoformat() if isinstance(v, datetime) else v) for c, v in row._mapping.items()}


def list_keys(engine: Engine) -> list[dict]:
    """Every key, oldest first: id, role, created (when, by whom), expiry, revocation. Never a secret or a hash."""
    with reading(engine) as conn:
        rows = conn.execute(select(*_SHOWN).order_by(T.api_keys.c.created_at, T.api_keys.c.key_id)).all()
    return [_as_dict(r) for r in rows]


def has_keys(engine: Engine, role: str | None = None, now: datetime | None = None) -> bool:
    """Is there a usable key (unrevoked, and unexpired at `now` when given), of `role` if given?"""
    k = T.api_keys
    with reading(engine) as conn:
        q = select(k.c.key_id).where(k.c.revoked_at.is_(None))
        if now is not None:
            q = q.where(or_(k.c.expires_at.is_(None), k.c.expires_at > now))
        if role:
            q = q.where(T.api_keys.c.role == role)
        return conn.execute(q.limit(1)).first() is not None
