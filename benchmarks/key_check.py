"""What checking an API key costs per request (serving/api/auth.py `Keys.role_of`): a valid key, whose row is read
by its primary key every time, and a known-bad key, answered from the bounded cache of invalid keys.

    .venv/bin/python -m benchmarks.key_check sqlite:////tmp/keycheck.db
    .venv/bin/python -m benchmarks.key_check postgresql://postgres@127.0.0.1:5432/keycheck   # an empty database

Not a `docket bench` suite: a one-off measurement behind a design choice (no cache of valid keys), recorded in
docs/benchmarks.md.
"""
from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from serving.api.auth import Keys
from serving.api.key_store import create_key
from serving.store.db import make_engine, migrate


def per_call_us(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main(url: str, n: int = 5_000, others: int = 200) -> str:
    engine = make_engine(url)
    migrate(engine)
    for _ in range(others):  # a store with some keys, not just the one
        create_key(engine, "intake", actor="bench", now=datetime.now(UTC))
    valid = f"Bearer {create_key(engine, 'admin', actor='bench', now=datetime.now(UTC))}"
    bad = "Bearer dk_000000000000_" + "x" * 32
    keys = Keys(engine)
    per_call_us(lambda: keys.role_of(valid), 200)  # warm the pool
    runs = [per_call_us(lambda: keys.role_of(valid), n) for _ in range(3)]
    keys.role_of(bad)
    cached = per_call_us(lambda: keys.role_of(bad), n)
    return (f"{engine.dialect.name}: valid key {min(runs):.0f} us per request (3 runs of {n:,}: "
            f"{', '.join(f'{r:.0f}' for r in runs)}); known-bad key {cached:.1f} us")


if __name__ == "__main__":  # pragma: no cover
    print(main(sys.argv[1]))
