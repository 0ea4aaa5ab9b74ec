"""Console sessions: a signed-in browser holds a random token in an HttpOnly cookie; the store keeps its SHA-256.

The API key is checked once, at sign-in, and never leaves the sign-in request: the session remembers only the
key's id and role, so a revoked or expired key ends its sessions too (every lookup joins the key's row). Each session has
its own CSRF token, which every state-changing form carries.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, or_, select

from serving.store import tables as T
from serving.store.db import append_audit, reading, writing

LIFETIME = timedelta(hours=12)
COOKIE = "docket_session"


@dataclass(frozen=True)
class Session:
    key_id: str
    role: str
    csrf: str
    expires_at: datetime

    @property
    def actor(self) -> str:
        """The acting identity, spelled as the API's auth middleware spells it, so audit records match."""
        return f"key:{self.key_id}"

    def csrf_matches(self, token: str | None) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode(), self.csrf.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(engine: Engine, key_id: str, role: str, now: datetime) -> str:
    """A new session for a verified key; returns the token for the cookie (stored only as its digest)."""
    token = secrets.token_urlsafe(32)
    s = T.console_sessions
    with writing(engine) as conn:
        conn.execute(delete(s).where(s.c.expires_at <= now))
        conn.execute(insert(s).values(token_hash=_digest(token), key_id=key_id, role=role,
                                      csrf=secrets.token_urlsafe(32), created_at=now, expires_at=now + LIFETIME))
        append_audit(conn, at=now, actor=f"key:{key_id}", action="console.signed_in", entity="api_key",
                     entity_id=key_id, before=None, after={"role": role, "expires_at": now + LIFETIME}, why=None)
    return token


def find(engine: Engine, token: str | None, now: datetime) -> Session | None:
    """The unexpired session of a cookie's token whose key is neither revoked nor expired, else None."""
    if not token:
        return None
    s, k = T.console_sessions, T.api_keys
    with reading(engine) as conn:
        row = conn.execute(
            select(s.c.key_id, s.c.role, s.c.csrf, s.c.expires_at)
            .join(k, k.c.key_id == s.c.key_id)
            .where(s.c.token_hash == _digest(token), s.c.expires_at > now, k.c.revoked_at.is_(None),
                   or_(k.c.expires_at.is_(None), k.c.expires_at > now))).first()
    return Session(*row) if row else None


def sign_out(engine: Engine, token: str, session: Session, now: datetime) -> None:
    """End the session: its row is deleted, so the cookie's token is worthless even if it was copied."""
    s = T.console_sessions
    with writing(engine) as conn:
        conn.execute(delete(s).where(s.c.token_hash == _digest(token)))
        append_audit(conn, at=now, actor=session.actor, action="console.signed_out", entity="api_key",
                     entity_id=session.key_id, before=None, after=None, why=None)
