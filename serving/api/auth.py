"""API keys and roles: who may call what.

Keys look like `dk_<key id>_<secret>`; only a SHA-256 of the secret is stored
(the secret is 192 random bits, so a slow hash adds nothing). One ASGI
middleware guards every route of the service, BentoML's and FastAPI's alike,
so no endpoint can forget to check. A 401 or 403 body never says which keys exist.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from datetime import datetime

from sqlalchemy import Engine, insert, select

from serving.api.asgi import send_json
from serving.api.errors import error_body
from serving.store import tables as T
from serving.store.db import append_audit, reading, writing

ROLES = ("intake", "investigator", "admin")
OPEN_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/healthz"})
# The investigator console signs people in with a session cookie and checks roles itself (serving/api/console.py).
CONSOLE_PREFIX = "/console"
ANY = frozenset(ROLES)

# (method, path regex) -> roles allowed; admin may do everything.
ROUTES: tuple[tuple[str, re.Pattern, frozenset[str]], ...] = tuple(
    (method, re.compile(f"^{pattern}$"), frozenset(roles) | {"admin"})
    for method, pattern, roles in (
        ("POST", "/score", ANY), ("POST", "/rank", ANY), ("POST", "/predict/fraud", ANY), ("POST", "/penalty", ANY),
        ("POST", "/reports", {"intake"}), ("POST", "/events", {"intake"}),
        ("GET", "/queue", {"investigator"}), ("POST", "/queue/claim", {"investigator"}),
        ("POST", "/cases/[^/]+/release", {"investigator"}),
        ("GET", "/cases/[^/]+", {"investigator"}), ("POST", "/cases/[^/]+/resolve", {"investigator"}),
        ("GET", "/alerts", {"investigator"}),
        ("POST", "/violations", {"investigator"}), ("GET", "/accounts/[^/]+/health", {"investigator"}),
        ("GET", "/accounts/[^/]+/timeline", {"investigator"}),
        ("POST", "/violations/[^/]+/appeal", set()), ("POST", "/violations/[^/]+/remedial", set()),
        ("GET", "/audit", set()), ("POST", "/keys", set()), ("POST", "/admin/reload", set()),
        ("GET", "/models", {"investigator"}),
    )
)
CACHE_SECONDS = 30.0  # a revoked key stops working within this time


class KeyError_(ValueError):
    """A key request that cannot be honoured (unknown role)."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(engine: Engine, role: str, *, actor: str, now: datetime) -> str:
    """A new key for `role`; the plain key is returned once and never stored."""
    if role not in ROLES:
        raise KeyError_(f"unknown role '{role}' (allowed: {', '.join(ROLES)})")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    with writing(engine) as conn:
        conn.execute(insert(T.api_keys).values(key_id=key_id, key_hash=_digest(secret), role=role, created_at=now,
                                               created_by=actor))
        append_audit(conn, at=now, actor=actor, action="key_created", entity="api_key", entity_id=key_id,
                     before=None, after={"role": role}, why=None)
    return f"dk_{key_id}_{secret}"


def has_keys(engine: Engine, role: str | None = None) -> bool:
    with reading(engine) as conn:
        q = select(T.api_keys.c.key_id).where(T.api_keys.c.revoked_at.is_(None))
        if role:
            q = q.where(T.api_keys.c.role == role)
        return conn.execute(q.limit(1)).first() is not None


def _parse(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Bearer "):
        return None
    parts = header[7:].strip().split("_", 2)
    if len(parts) != 3 or parts[0] != "dk" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def allowed_roles(method: str, path: str) -> frozenset[str] | None:
    """Roles that may call this route; None for a route Docket does not know (still needs a valid key)."""
    for m, pattern, roles in ROUTES:
        if m == method and pattern.match(path):
            return roles
    return None


class Keys:
    """Key lookups with a short cache, so a request costs no database read in the common case."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def role_of(self, header: str | None) -> tuple[str, str] | None:
        """(key id, role) of a valid key in an Authorization header, else None."""
        parsed = _parse(header)
        if parsed is None:
            return None
        key_id, secret = parsed
        token = _digest(f"{key_id}:{secret}")
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(token)
        if hit and now - hit[0] < CACHE_SECONDS:
            return (key_id, hit[1]) if hit[1] else None
        with reading(self.engine) as conn:
            row = conn.execute(select(T.api_keys.c.key_hash, T.api_keys.c.role).where(
                T.api_keys.c.key_id == key_id, T.api_keys.c.revoked_at.is_(None))).first()
        role = row[1] if row is not None and hmac.compare_digest(row[0], _digest(secret)) else None
        with self._lock:
            self._cache[token] = (now, role)
        return (key_id, role) if role else None


class AuthMiddleware:
    """ASGI middleware: 401 without a valid key, 403 with a key whose role may not call the route."""

    def __init__(self, app, keys_factory):
        self.app, self._keys_factory, self._keys = app, keys_factory, None

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path == CONSOLE_PREFIX \
                or path.startswith(CONSOLE_PREFIX + "/"):
            return await self.app(scope, receive, send)
        if self._keys is None:
            self._keys = self._keys_factory()
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        found = self._keys.role_of(headers.get("authorization"))
        if found is None:
            return await _deny(send, 401, "missing or invalid API key (send Authorization: Bearer <key>)")
        key_id, role = found
        roles = allowed_roles(scope["method"], scope["path"])
        if roles is not None and role not in roles:
            return await _deny(send, 403, f"a key with role '{role}' may not call {scope['method']} {scope['path']}")
        scope.setdefault("state", {})
        scope["state"]["actor"], scope["state"]["role"] = f"key:{key_id}", role
        return await self.app(scope, receive, send)


async def _deny(send, status: int, message: str) -> None:
    await send_json(send, status, error_body(message))
