"""Soak: mixed traffic at 8 clients for `soak_s` seconds (30 minutes; tiny: 20 s) against the real service.

Each client loops over the five things the service is used for, in a fixed mix: score one report
(`POST /score`), file one new report (`POST /reports`), read the first page of the queue (`GET /queue`),
and claim the best case then resolve it (`POST /queue/claim`, `POST /cases/{id}/resolve`). Every answer
that is not a 2xx is an error (a claim answering `{"case": null}` is not: the queue may run dry). At the end
every report the service acknowledged (`accepted` in a 200) must be stored exactly once.

Memory. The service keeps what it is sent: every filed report joins the worker's live history (issue 12) and
opens a case, so a soak that files 16,000 reports onto a 20,000-report data set *should* end bigger than it
started. Flat memory therefore means "no growth beyond what the data costs": after the soak a fresh service is
started over the store the soak left and warmed with the same mix for five minutes; the soaked worker's
memory at the end must be within 10% of the fresh one's. The service's memory (its process tree: BentoML's
server and its worker) and the store's report count are sampled every few seconds; the series is written as
CSV and plotted, with the slope of memory against stored reports (what a report costs), and the raw growth
(last third of the samples against the first) is reported beside it.

Issue 15's target: 0 errors, flat memory, every acknowledged report stored once, over 30 minutes.
"""
from __future__ import annotations

import csv
import itertools
import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Callable

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
FRESH_S, FRESH_S_TINY = 300.0, 6.0  # the fresh service's warm-up with the same mix over the soak's data (its own rise lasts minutes)
END_SAMPLES = 5  # "memory at the end": the mean of this many last samples (25 s)


def run(config) -> list[dict]:
    """One soak row per store (SQLite; PostgreSQL too when postgres_url is set)."""
    return per_store(config, "soak", lambda url, store, data_dir, mlflow_uri, reports, work:
                     soak(url, store, data_dir, mlflow_uri, reports, work, config))


class Traffic:
    """The 8 clients' mixed traffic against one service, with what it got back (kept across services)."""

    def __init__(self, keys: dict[str, str], reports: list[dict]):
        self.keys = keys
        self.counts = {op: 0 for op in set(MIX)}
        self.errors: list[str] = []
        self.acknowledged: list[str] = []
        self.latencies: dict[str, list[float]] = {op: [] for op in set(MIX)}
        self._lock = threading.Lock()
        self._pool = itertools.cycle(reports)

    def run(self, base: str, seconds: float, sample: Callable[[], tuple[float, int]]) -> list[tuple[float, float, int]]:
        """Drive `base` for `seconds`; (seconds in, memory MB, stored reports) every RSS_EVERY_S and at the end."""
        stop = threading.Event()
        samples: list[tuple[float, float, int]] = []
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as clients:
            futures = [clients.submit(self._client, base, k, stop) for k in range(CLIENTS)]
            while time.perf_counter() - t0 < seconds:
                samples.append((time.perf_counter() - t0, *sample()))
                time.sleep(min(RSS_EVERY_S, max(seconds - (time.perf_counter() - t0), 0.01)))
            stop.set()
            for f in futures:
                f.result()
        samples.append((time.perf_counter() - t0, *sample()))
        return samples

    def _new_report(self) -> dict:
        with self._lock:
            base = next(self._pool)
        return dict(base, report_id=f"soak-{uuid.uuid4().hex[:16]}")

    def _call(self, http, base: str, op: str, method: str, path: str, **kwargs):
        import httpx

        t0 = time.perf_counter()
        try:
            res = http.request(method, f"{base}{path}", **kwargs)
        except httpx.HTTPError as err:
            with self._lock:
                self.errors.append(f"{op}: {type(err).__name__}: {err}")
            return None
        with self._lock:
            self.latencies[op].append(time.perf_counter() - t0)
            if not 200 <= res.status_code < 300:
                self.errors.append(f"{op}: {res.status_code}: {res.text[:200]}")
        return res if 200 <= res.status_code < 300 else None

    def _client(self, base: str, k: int, stop: threading.Event) -> None:
        import httpx

        intake = httpx.Client(headers={"Authorization": f"Bearer {self.keys['intake']}"}, timeout=120)
        investigator = httpx.Client(headers={"Authorization": f"Bearer {self.keys['investigator']}"}, timeout=120)
        call = self._call
        with intake, investigator:
            for op in itertools.cycle(MIX[k % len(MIX):] + MIX[:k % len(MIX)]):
                if stop.is_set():
                    return
                if op == "score":
                    call(intake, base, op, "POST", "/score", json={"reports": [self._new_report()]})
                elif op == "intake":
                    res = call(intake, base, op, "POST", "/reports", json={"reports": [self._new_report()]})
                    if res is not None:
                        with self._lock:
                            self.acknowledged.extend(res.json()["accepted"])
                elif op == "queue":
                    call(investigator, base, op, "GET", "/queue", params={"limit": 50})
                else:
                    res = call(investigator, base, op, "POST", "/queue/claim")
                    case = res.json()["case"] if res is not None else None
                    if case is not None:
                        call(investigator, base, op, "POST", f"/cases/{case['case_id']}/resolve",
                             json={"valid": False, "notes": "soak"})
                with self._lock:
                    self.counts[op] += 1


def soak(url: str, store: str, data_dir: Path, mlflow_uri: str, reports: list[dict], work: Path, config) -> dict:
    from serving.api.auth import create_key

    engine = make_engine(url)
    migrate(engine)
    keys = {role: create_key(engine, role, actor="bench", now=datetime.now(UTC)) for role in ("intake", "investigator")}
    env = service_env(url, data_dir, mlflow_uri, work)
    traffic = Traffic(keys, reports)
    with serve_docket(env, work, f"service-soak-{store}.log") as (base, pid):
        cpu0 = tree_cpu_s(pid)
        series = traffic.run(base, float(config.soak_s), lambda: (tree_rss_mb(pid), _stored_reports(engine)))
        cpu = tree_cpu_s(pid) - cpu0
        requests = sum(len(v) for v in traffic.latencies.values())
        latencies = np.asarray([x for op in traffic.latencies.values() for x in op] or [0.0])
    with serve_docket(env, work, f"service-soak-{store}-fresh.log") as (base, pid):
        fresh = traffic.run(base, FRESH_S_TINY if config.tiny else FRESH_S,
                            lambda: (tree_rss_mb(pid), _stored_reports(engine)))
    stored = _stored(engine, traffic.acknowledged)
    engine.dispose()
    memory = _memory(series, fresh)
    paths = _write_series(work / f"soak-{store}", series, fresh)
    ok = not traffic.errors and abs(memory["rss_beyond_data"]) <= FLAT_WITHIN and stored["once"]
    return {"suite": "soak", "case": "mixed_8_clients", "store": store, "duration_s": round(series[-1][0], 1),
            "clients": CLIENTS, "requests": requests,
            **{f"{op}_calls": n for op, n in sorted(traffic.counts.items())},
            "errors": len(traffic.errors), "first_error": traffic.errors[0] if traffic.errors else None,
            "p50_ms": _ms(float(np.percentile(latencies, 50))), "p99_ms": _ms(float(np.percentile(latencies, 99))),
            "server_cpu_ms_per_request": round(1000 * cpu / max(requests, 1), 3), **memory,
            "acknowledged": len(traffic.acknowledged), "stored_once": stored["once"], "missing": stored["missing"],
            "duplicates": stored["duplicates"], "load_avg": load_average(), **paths,
            "target": "0 errors, memory at the end within 10% of a fresh service's over the same data, every "
                      "acknowledged report stored once",
            "pass": None if config.tiny else ok}


def _memory(series: list[tuple[float, float, int]], fresh: list[tuple[float, float, int]]) -> dict:
    """The soak's memory figures: raw growth, memory at the end against a fresh service's, and MB per report."""
    rss = [m for _, m, _ in series]
    third = max(len(rss) // 3, 1)
    first_mb, last_mb = statistics.mean(rss[:third]), statistics.mean(rss[-third:])
    end_mb = statistics.mean(rss[-END_SAMPLES:])
    fresh_mb = statistics.mean(m for _, m, _ in fresh[-END_SAMPLES:])
    stored = np.asarray([n for _, _, n in series], dtype=float)
    slope = (float(np.polyfit(stored, np.asarray(rss), 1)[0]) * 1000 if np.ptp(stored) > 0 else None)
    return {"rss_first_third_mb": round(first_mb, 1), "rss_last_third_mb": round(last_mb, 1),
            "rss_growth": round(last_mb / first_mb - 1, 4), "rss_samples": len(rss),
            "reports_stored_start": int(stored[0]), "reports_stored_end": int(stored[-1]),
            "mb_per_1000_reports": None if slope is None else round(slope, 2),
            "rss_end_mb": round(end_mb, 1), "rss_fresh_same_data_mb": round(fresh_mb, 1),
            "rss_beyond_data": round(end_mb / fresh_mb - 1, 4)}


def _write_series(stem: Path, series: list[tuple[float, float, int]], fresh: list[tuple[float, float, int]]) -> dict:
    """The memory series as CSV and a plot (memory and stored reports over time; the fresh service's level)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    csv_path, png_path = stem.with_suffix(".csv"), stem.with_suffix(".png")
    with csv_path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["service", "seconds", "rss_mb", "reports_stored"])
        out.writerows([("soaked", round(t, 1), m, n) for t, m, n in series]
                      + [("fresh", round(t, 1), m, n) for t, m, n in fresh])
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot([t / 60 for t, _, _ in series], [m for _, m, _ in series], label="soaked service: memory (MB)")
    fresh_mb = statistics.mean(m for _, m, _ in fresh[-END_SAMPLES:])
    ax.axhline(fresh_mb, color="tab:green", linestyle="--", label="fresh service over the soak's data (MB)")
    ax.axhspan(fresh_mb * (1 - FLAT_WITHIN), fresh_mb * (1 + FLAT_WITHIN), color="tab:green", alpha=0.08)
    ax.set_xlabel("minutes")
    ax.set_ylabel("resident memory, MB")
    right = ax.twinx()
    right.plot([t / 60 for t, _, _ in series], [n for _, _, n in series], color="tab:orange",
               label="reports stored")
    right.set_ylabel("reports stored")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    ax.set_title(f"Soak at {CLIENTS} clients: memory and stored reports")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return {"series_csv": str(csv_path), "plot": str(png_path)}


def _stored_reports(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(T.intake_reports)).scalar_one())


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
