"""Fuzz: schemathesis over the whole OpenAPI description and the hostile corpus, against the real service, while the
worker's memory is watched (issue 15's target: 0 answers of 5xx, 0 slower than 5 s, at 300+ examples per
operation; the worker's memory flat within 10% across it).

One row per store. The service is started over a simulated data set with trained models (the queue suite's inputs),
then warmed up by one short pass of both (so first-use allocations such as the models' buffers and the key cache
are not counted as growth); the worker's resident memory is read, then every operation gets EXAMPLES requests that
fit its schema and EXAMPLES that break it (seeded: hypothesis `derandomize`), and the hostile corpus
(benchmarks/hostile.py, with one 70 MB body per route) is replayed HOSTILE_ROUNDS times; the memory is read again.

`fuzz()` is also what `make test` runs (tests/service/test_fuzz.py) at a few examples per operation.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import hostile
from benchmarks.online import serve_docket, tree_cpu_s, worker_rss_mb
from benchmarks.queue_bench import load_average, per_store, service_env
from serving.store.db import make_engine, migrate

EXAMPLES, EXAMPLES_TINY, WARM_UP_EXAMPLES = 300, 3, 10  # per operation and generation mode
HOSTILE_ROUNDS, HOSTILE_ROUNDS_TINY = 3, 1
SLOW = 5.0  # seconds: the slowest answer allowed
FLAT_WITHIN = 0.10


def fuzz(operation, mode, base_url: str, headers: dict[str, str], examples: int) -> tuple[list[str], int]:
    """What went wrong in `examples` seeded requests to one operation (a 5xx, an answer slower than SLOW, no
    answer), and how many requests were sent."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    found: list[str] = []
    sent = [0]

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        start = time.monotonic()
        sent[0] += 1
        try:
            res = case.call(base_url=base_url, headers=headers, timeout=SLOW * 3)
        except Exception as err:  # a timeout or a dropped connection is a failure too
            found.append(f"{case.method} {case.formatted_path}: {type(err).__name__} body={case.body!r:.300}")
            return
        took = time.monotonic() - start
        if res.status_code >= 500 or took > SLOW:
            found.append(f"{case.method} {case.formatted_path}: {res.status_code} in {took:.1f}s "
                         f"body={case.body!r:.300} -> {res.text[:300]}")

    try:
        run()
    except Unsatisfiable:  # nothing to break (negative mode on a route without parameters or body)
        pass
    return found, sent[0]


def operations(base_url: str, headers: dict[str, str]) -> list:
    """Every operation of the service's /openapi.json."""
    import schemathesis

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers, timeout=30)
    return [result.ok() for result in schema.get_all_operations()]


def fuzz_all(base_url: str, headers: dict[str, str], examples: int) -> tuple[list[str], int]:
    """Both generation modes over every operation: the failures and the number of requests."""
    from schemathesis import GenerationMode

    failures, sent = [], 0
    for operation in operations(base_url, headers):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            found, n = fuzz(operation, mode, base_url, headers, examples)
            failures += found
            sent += n
    return failures, sent


def replay_hostile(base_url: str, headers: dict[str, str], rounds: int, oversize: bool) -> tuple[list[str], int]:
    """The hostile corpus `rounds` times (`oversize`: with its 70 MB bodies): anything but a prompt 4xx fails."""
    import httpx

    failures, sent = [], 0
    with httpx.Client(base_url=base_url, headers=headers, timeout=SLOW * 3) as http:
        for _ in range(rounds):
            for method, path, kwargs in hostile.requests(oversize):
                kwargs = {**kwargs, "headers": {**headers, **kwargs.get("headers", {})}}
                start = time.monotonic()
                sent += 1
                try:
                    res = http.request(method, path, **kwargs)
                except httpx.HTTPError as err:
                    failures.append(f"{method} {path}: {type(err).__name__}")
                    continue
                took = time.monotonic() - start
                if not 400 <= res.status_code < 500 or took > SLOW:
                    failures.append(f"{method} {path}: {res.status_code} in {took:.1f}s -> {res.text[:200]}")
    return failures, sent


def run(config) -> list[dict]:
    return per_store(config, "fuzz", lambda url, store, data_dir, mlflow_uri, _, work:
                     fuzz_store(url, store, data_dir, mlflow_uri, work, config))


def fuzz_store(url: str, store: str, data_dir: Path, mlflow_uri: str, work: Path, config) -> dict:
    from serving.api.auth import create_key

    engine = make_engine(url)
    migrate(engine)
    headers = {"Authorization": f"Bearer {create_key(engine, 'admin', actor='bench', now=datetime.now(UTC))}"}
    engine.dispose()
    examples = EXAMPLES_TINY if config.tiny else EXAMPLES
    rounds = HOSTILE_ROUNDS_TINY if config.tiny else HOSTILE_ROUNDS
    with serve_docket(service_env(url, data_dir, mlflow_uri, work), work, f"service-fuzz-{store}.log") as (base, pid):
        fuzz_all(base, headers, min(WARM_UP_EXAMPLES, examples))  # first use: caches, buffers, lazily built state
        replay_hostile(base, headers, 1, oversize=False)
        before, cpu0, t0 = worker_rss_mb(pid), tree_cpu_s(pid), time.monotonic()
        failures, sent = fuzz_all(base, headers, examples)
        hostile_failures, hostile_sent = replay_hostile(base, headers, rounds, oversize=not config.tiny)
        wall, cpu, after = time.monotonic() - t0, tree_cpu_s(pid) - cpu0, worker_rss_mb(pid)
    growth = after / before - 1 if before else 0.0
    every = failures + hostile_failures
    ok = not every and abs(growth) <= FLAT_WITHIN
    return {"suite": "fuzz", "case": "schemathesis_and_hostile", "store": store, "examples_per_operation": examples,
            "schemathesis_requests": sent, "hostile_requests": hostile_sent, "failures": len(every),
            "first_failure": every[0] if every else None, "wall_s": round(wall, 1),
            "server_cpu_ms_per_request": round(1000 * cpu / max(sent + hostile_sent, 1), 2),
            "worker_rss_before_mb": before, "worker_rss_after_mb": after, "rss_growth": round(growth, 4),
            "load_avg": load_average(),
            "target": f"0 answers of 5xx or slower than {SLOW:g} s at {EXAMPLES}+ examples per operation; "
                      f"worker RSS within {FLAT_WITHIN:.0%}",
            "pass": None if config.tiny else ok}
