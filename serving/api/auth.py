"""Who may call what: every request's key checked against the store, its role against the route, its rate.

Keys are created, listed and revoked in serving/api/key_store.py. One ASGI middleware guards every route of the
service, BentoML's and FastAPI's alike, so no endpoint can forget to check. A 401 or 403 body never says which
keys exist. A key over its rate (serving/api/rate_limits.py) is answered 429 with Retry-After.
"""
from __future__ import annotations

import hmac
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, select

from serving.api.asgi import send_json
from serving.api.errors import error_body
from serving.api.key_store import ROLES, KeyError_, create_key, digest, has_keys  # noqa: F401 - re-exported
from serving.api.rate_limits import RateLimiter
from serving.store import tables as T
from serving.store.db import reading

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
        ("GET", "/audit", set()), ("POST", "/admin/reload", set()),
        ("POST", "/keys", set()), ("GET", "/keys", set()), ("POST", "/keys/[^/]+/revoke", set()),
        ("GET", "/models", {"investigator"}),
    )
)
INVALID_CACHE_SIZE = 10_000  # most keys remembered as invalid per worker (least recently seen dropped first)
LONGEST_KEY_ID, LONGEST_SECRET = 32, 64  # longer parts cannot be a key Docket made


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


_KEY_ROW = select(T.api_keys.c.key_hash, T.api_keys.c.role, T.api_keys.c.revoked_at, T.api_keys.c.expires_at) \
    .where(T.api_keys.c.key_id == bindparam("key_id"))  # built once: this runs on every request


class Keys:
    """Checks a key against its stored row on every request, so a revocation or an expiry takes effect at once
    in every worker of every process, with nothing to invalidate.

    Why no cache of valid keys: the row is read by its primary key, measured at about 0.07 ms on SQLite and 0.2-0.4 ms
    on PostgreSQL per request (docs/benchmarks.md, "key check"), about what reading a store-wide "keys changed"
    counter to validate a cache would cost anyway. Keys found invalid (unknown, wrong secret, revoked, expired)
    never become valid again, so they are remembered, without touching the store again, in a bounded LRU of
    INVALID_CACHE_SIZE digests: a flood of distinct bad keys costs one read each and a fixed amount of memory.
    """

    def __init__(self, engine: Engine, invalid_cache_size: int = INVALID_CACHE_SIZE,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.engine, self._clock, self._size = engine, clock, invalid_cache_size
        self._invalid: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def role_of(self, header: str | None) -> tuple[str, str] | None:
        """(key id, role) of a valid key in an Authorization header, else None."""
        parsed = _parse(header)
        if parsed is None or len(parsed[0]) > LONGEST_KEY_ID or len(parsed[1]) > LONGEST_SECRET:
            return None
        key_id, secret = parsed
        token = digest(f"{key_id}:{secret}")
        with self._lock:
            if token in self._invalid:
                self._invalid.move_to_end(token)
                return None
        with reading(self.engine) as conn:
            row = conn.execute(_KEY_ROW, {"key_id": key_id}).first()
        if row is not None and hmac.compare_digest(row.key_hash, digest(secret)) and row.revoked_at is None \
                and (row.expires_at is None or row.expires_at > self._clock()):
            return key_id, row.role
        with self._lock:
            self._invalid[token] = None
            while len(self._invalid) > self._size:
                self._invalid.popitem(last=False)
        return None

    @property
    def invalid_cached(self) -> int:
        return len(self._invalid)


class AuthMiddleware:
    """ASGI middleware: 401 without a valid key, 403 with a key whose role may not call the route, 429 with
    Retry-After for a key over its rate (checked after the role, so a refused call costs no token)."""

    def __init__(self, app, keys_factory: Callable[[], Keys], limiter_factory: Callable[[], RateLimiter] | None = None):
        self.app, self._keys_factory, self._keys = app, keys_factory, None
        self._limiter = (limiter_factory or (lambda: RateLimiter(0, 0)))()

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] != "http" or path in OPEN_PATHS or path == CONSOLE_PREFIX \
                or path.startswith(CONSOLE_PREFIX + "/"):
            return await self.app(scope, receive, send)
        if self._keys is None:
            self._keys = self._keys_factory()
        header = next((v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"authorization"),
                      None)
        found = self._keys.role_of(header)
        if found is None:
            return await _deny(send, 401, "missing or invalid API key (send Authorization: Bearer <key>)")
        key_id, role = found
        scope.setdefault("state", {})
        scope["state"]["key_id"] = key_id  # for the request log (serving/api/request_log.py), also on a 403 or 429
        roles = allowed_roles(scope["method"], scope["path"])
        if roles is not None and role not in roles:
            return await _deny(send, 403, f"a key with role '{role}' may not call {scope['method']} {scope['path']}")
        wait = self._limiter.take(key_id)
        if wait > 0:
            return await send_json(send, 429, error_body(
                f"rate limit: {self._limiter.rate:g} requests per second per key (burst {self._limiter.burst:g}); "
                f"retry after {math.ceil(wait)} s"), headers=[(b"retry-after", str(math.ceil(wait)).encode())])
        scope["state"]["actor"], scope["state"]["role"] = f"key:{key_id}", role
        return await self.app(scope, receive, send)


async def _deny(send, status: int, message: str) -> None:
    await send_json(send, status, error_body(message))
