"""Per-key rate limits: a token bucket per API key id, refilled at `rate` per second up to `burst`.

The buckets live in each worker process (no shared state, no store read per request): with N workers a key may
make up to N times the rate in all. That keeps the check to a few arithmetic operations under a lock; the limit
is a guard against a runaway client, not a billing meter. Only keys that passed authentication get a bucket, so
the number of buckets is bounded by the number of keys in the store.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiter:
    """take(key_id) -> 0.0 when the request may go on, else the seconds until a token is there."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        if rate < 0 or (rate > 0 and burst < 1):
            raise ValueError(f"a rate limit needs rate >= 0 and burst >= 1 (got {rate}, {burst})")
        self.rate, self.burst, self._clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key_id: str) -> float:
        if not self.enabled:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
        return (1.0 - tokens) / self.rate
