"""Soak: mixed traffic at 8 clients for `soak_s` seconds (30 minutes; tiny: 20 s) against the real service.

Each client loops over the five things the service is used for, in a fixed mix: score one report
(`POST /score`), file one new report (`POST /reports`), read the first page of the queue (`GET /queue`),
and claim the best case then resolve it (`POST /queue/claim`, `POST /cases/{id}/resolve`). Every answer
that is not a 2xx is an error (a claim answering `{"case": null}` is not: the queue may run dry). The
service's memory (its process tree: BentoML's server and its worker) is sampled every few seconds; memory
is flat when the mean of the last third of the samples is within 10% of the mean of the first third. At
the end every report the service acknowledged (`accepted` in a 200) must be stored exactly once.

Issue 15's target: 0 errors, flat memory, every acknowledged report stored once, over 30 minutes.
"""
from __future__ import annotations

import itertools
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from benchmarks.online import serve_docket, tree_cpu_s, tree_rss_mb
from benchmarks.queue_bench import _ms, load_average, per_store, service_env
from serving.store import tables as T
from serving.store.db import make_engine, migrate

CLIENTS = 8
MIX = ("score", "intake", "queue", "claim_resolve", "score", "intake", "queue")  # one loop of a client
RSS_EVERY_S = 5.0
FLAT_WITHIN = 0.10


def run(config) -> list[dict]:
    """One soak row per store (SQLite; PostgreSQL too when postgres_url is set)."""
    return per_store(config, "soak", lambda url, store, data_dir, mlflow_uri, reports, work:
                     soak(url, store, data_dir, mlflow_uri, reports, work, config))


def soak(url: str, store: str, data_dir: Path, mlflow_uri: str, reports: list[dict], work: Path, config) -> dict:
    import httpx

    from serving.api.auth import create_key

    engine = make_engine(url)
    migrate(engine)
    keys = {role: create_key(engine, role, actor="bench", now=datetime.now(UTC)) for role in ("intake", "investigator")}
    env = service_env(url, data_dir, mlflow_uri, work)
    counts = {op: 0 for op in set(MIX)}
    errors: list[str] = []
    acknowledged: list[str] = []
    latencies: dict[str, list[float]] = {op: [] for op in set(MIX)}
    lock = threading.Lock()
    pool = itertools.cycle(reports)
    stop = threading.Event()

    def new_report() -> dict:
        with lock:
            base = next(pool)
        return dict(base, report_id=f"soak-{uuid.uuid4().hex[:16]}")

    def call(http: httpx.Client, op: str, method: str, path: str, **kwargs) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            res = http.request(method, f"{base}{path}", **kwargs)
        except httpx.HTTPError as err:
            with lock:
                errors.append(f"{op}: {type(err).__name__}: {err}")
            return None
        with lock:
            latencies[op].append(time.perf_counter() - t0)
            if not 200 <= res.status_code < 300:
                errors.append(f"{op}: {res.status_code}: {res.text[:200]}")
        return res if 200 <= res.status_code < 300 else None

    def client(k: int) -> None:
        intake = httpx.Client(headers={"Authorization": f"Bearer {keys['intake']}"}, timeout=120)
        investigator = httpx.Client(headers={"Authorization": f"Bearer {keys['investigator']}"}, timeout=120)
        with intake, investigator:
            for op in itertools.cycle(MIX[k % len(MIX):] + MIX[:k % len(MIX)]):
                if stop.is_set():
                    return
                if op == "score":
                    call(intake, op, "POST", "/score", json={"reports": [new_report()]})
                elif op == "intake":
                    sent = new_report()
                    res = call(intake, op, "POST", "/reports", json={"reports": [sent]})
                    if res is not None:
                        with lock:
                            acknowledged.extend(res.json()["accepted"])
                elif op == "queue":
                    call(investigator, op, "GET", "/queue", params={"limit": 50})
                else:
                    res = call(investigator, op, "POST", "/queue/claim")
                    case = res.json()["case"] if res is not None else None
                    if case is not None:
                        call(investigator, op, "POST", f"/cases/{case['case_id']}/resolve",
                             json={"valid": False, "notes": "soak"})
                with lock:
                    counts[op] += 1

    duration = float(config.soak_s)
    rss: list[tuple[float, float]] = []
    with serve_docket(env, work, f"service-soak-{store}.log") as (base, pid):
        t0, cpu0 = time.perf_counter(), tree_cpu_s(pid)
        with ThreadPoolExecutor(CLIENTS) as clients:
            futures = [clients.submit(client, k) for k in range(CLIENTS)]
            while time.perf_counter() - t0 < duration:
                rss.append((time.perf_counter() - t0, tree_rss_mb(pid)))
                time.sleep(min(RSS_EVERY_S, max(duration - (time.perf_counter() - t0), 0.01)))
            stop.set()
            for f in futures:
                f.result()
        wall, cpu = time.perf_counter() - t0, tree_cpu_s(pid) - cpu0
        rss.append((wall, tree_rss_mb(pid)))
    stored = _stored(engine, acknowledged)
    engine.dispose()
    third = max(len(rss) // 3, 1)
    first_mb, last_mb = statistics.mean(m for _, m in rss[:third]), statistics.mean(m for _, m in rss[-third:])
    growth = last_mb / first_mb - 1
    every = [x for op in latencies.values() for x in op]
    lat = np.asarray(every) if every else np.zeros(1)
    ok = not errors and abs(growth) <= FLAT_WITHIN and stored["once"]
    return {"suite": "soak", "case": "mixed_8_clients", "store": store, "duration_s": round(wall, 1),
            "clients": CLIENTS, "requests": len(every), **{f"{op}_calls": n for op, n in sorted(counts.items())},
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "p50_ms": _ms(float(np.percentile(lat, 50))), "p99_ms": _ms(float(np.percentile(lat, 99))),
            "server_cpu_s": round(cpu, 1), "rss_first_third_mb": round(first_mb, 1),
            "rss_last_third_mb": round(last_mb, 1), "rss_growth": round(growth, 4), "rss_samples": len(rss),
            "acknowledged": len(acknowledged), "stored_once": stored["once"], "missing": stored["missing"],
            "duplicates": stored["duplicates"], "load_avg": load_average(),
            "target": "0 errors, RSS last third within 10% of first third, every acknowledged report stored once",
            "pass": None if config.tiny else ok}


def _stored(engine, acknowledged: list[str]) -> dict:
    """Every acknowledged report is in intake_reports exactly once (the soak's ids are all new)."""
    with engine.connect() as conn:
        rows = conn.execute(select(T.intake_reports.c.report_id, func.count()).where(
            T.intake_reports.c.report_id.like("soak-%")).group_by(T.intake_reports.c.report_id)).all()
    seen = dict(rows)
    missing = [r for r in acknowledged if r not in seen]
    duplicates = sum(1 for n in seen.values() if n > 1) + (len(acknowledged) - len(set(acknowledged)))
    return {"once": not missing and not duplicates and set(seen) == set(acknowledged), "missing": len(missing),
            "duplicates": duplicates}
