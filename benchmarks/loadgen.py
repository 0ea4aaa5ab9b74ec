"""A small closed-loop HTTP load generator, run as its own process so it never shares an interpreter with a server.

    python -m benchmarks.loadgen --url http://127.0.0.1:3000/score --bodies bodies.json \
        --concurrency 8 --requests 2000 --duration 20 --header "Authorization: Bearer dk_..." --out result.json

`bodies.json` is a JSON list of request bodies; client requests cycle through them in order. N clients each
send one request, wait for the answer, and send the next, until `requests` have been sent or `duration`
seconds have passed (whichever first). Warm-up requests go first (see warm_up) and are not counted. A request counts
as an error unless the answer is HTTP 200; latency is measured from send to the whole body read.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import time
from pathlib import Path

import aiohttp
import numpy as np


def summarise(latencies_s: list[float], errors: int, elapsed_s: float, rows_per_request: int,
              error_samples: list[str]) -> dict:
    """Throughput and latency percentiles of one run (latencies of successful requests only)."""
    ms = np.asarray(latencies_s) * 1000.0
    done = len(latencies_s) + errors
    pct = (lambda q: round(float(np.percentile(ms, q)), 3)) if len(ms) else (lambda q: None)
    return {
        "requests": done, "ok": len(latencies_s), "errors": errors, "elapsed_s": round(elapsed_s, 3),
        "throughput_rps": round(len(latencies_s) / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "throughput_rows_s": round(len(latencies_s) * rows_per_request / elapsed_s, 1) if elapsed_s > 0 else 0.0,
        "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
        "mean_ms": round(float(ms.mean()), 3) if len(ms) else None,
        "error_samples": error_samples[:5],
    }


async def drive(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int, requests: int,
                duration_s: float, warmup: int, method: str = "POST") -> tuple[list[float], int, float, list[str], int]:
    """Run the clients; returns (latencies in s, error count, elapsed s, a few error messages, warm-up requests)."""
    headers = {"Content-Type": "application/json", **headers}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
        warmed = await warm_up(session, url, bodies, concurrency, warmup, method)
        latencies: list[float] = []
        samples: list[str] = []
        errors = 0
        sent = 0
        start = time.perf_counter()
        deadline = start + duration_s
        order = itertools.cycle(range(len(bodies)))

        async def client() -> None:
            nonlocal sent, errors
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                body = bodies[next(order)]
                t0 = time.perf_counter()
                try:
                    async with session.request(method, url, data=_payload(method, body)) as res:
                        text = await res.read()
                        ok = res.status == 200
                    if not ok:
                        samples.append(f"HTTP {res.status}: {text[:200]!r}")
                except (aiohttp.ClientError, asyncio.TimeoutError) as err:
                    ok = False
                    samples.append(f"{type(err).__name__}: {err}")
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(client() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - start, samples, warmed


WARMUP_SECONDS = 120.0


async def warm_up(session, url: str, bodies: list[bytes], concurrency: int, requests: int, method: str = "POST") -> int:
    """At least `requests` uncounted requests, in rounds of `concurrency` at once, until two rounds in a row
    all answer 200. A round at full concurrency opens (or reuses) every pooled connection, and a kept-alive
    connection stays with the worker that accepted it, so once two rounds succeed every connection the
    measurement will use reaches a worker that has loaded its models (one still loading answers 503, and
    counting those as errors measured the start-up, not the service)."""
    order = itertools.cycle(bodies)
    sent, good_rounds = 0, 0
    deadline = time.perf_counter() + WARMUP_SECONDS

    async def one(body: bytes) -> int:
        async with session.request(method, url, data=_payload(method, body)) as res:
            await res.read()
            return res.status

    while sent < requests or good_rounds < 2:
        statuses = await asyncio.gather(*(one(next(order)) for _ in range(concurrency)))
        sent += concurrency
        good_rounds = good_rounds + 1 if all(s == 200 for s in statuses) else 0
        if time.perf_counter() > deadline:
            raise SystemExit(f"the server still answers {sorted(set(statuses))} after {WARMUP_SECONDS:g} s of warm-up")
    return sent


def _payload(method: str, body: bytes) -> bytes | None:
    """The request body: none for a GET (its bodies only set how many distinct requests cycle)."""
    return None if method == "GET" else body


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--method", default="POST", choices=("POST", "GET"), help="GET sends no body")
    p.add_argument("--bodies", required=True, type=Path, help="JSON list of request bodies")
    p.add_argument("--rows", type=int, default=1, help="rows per request, for rows/s")
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    bodies = [json.dumps(b).encode() for b in json.loads(a.bodies.read_text())]
    headers = dict(h.split(": ", 1) for h in a.header)
    lat, errors, elapsed, samples, warmed = asyncio.run(
        drive(a.url, bodies, headers, a.concurrency, a.requests, a.duration, a.warmup, a.method))
    result = {"concurrency": a.concurrency, **summarise(lat, errors, elapsed, a.rows, samples), "warmup_requests": warmed}
    a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
