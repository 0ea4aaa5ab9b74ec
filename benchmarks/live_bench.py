"""Live suite: the marketplace's events through the real service (issue 12's targets), per store.

Everything runs on loopback in separate processes: the service (`bentoml serve`, benchmarks.online.serve_docket),
the load generator (benchmarks.loadgen) and the event sender (this module's `main`: `python -m
benchmarks.live_bench`). One run simulates a marketplace and trains the models (benchmarks.online.prepare), then
for SQLite and, when `postgres_url` is set, PostgreSQL (a fresh database per service, dropped afterwards):

1. **ingest**: a service with two workers on an empty store takes the simulation's events (serving.market.events.
   timeline, every kind but reports, in time order) through POST /events in batches of 500 from two clients as
   fast as they are answered; events/s, batches/s, p50/p99 per batch. Afterwards the store must hold each record
   exactly once (Market.tables() against the simulation: counts, keys, order facts).
2. **single events**: the same service, one event per request (a new account, or a refund of a stored order:
   each a new row) from 8 clients through the load generator; p99.
3. **freshness**: the same service: POST a new account, then at once (a fresh connection, so either worker may
   answer) POST /score of a report about it; the share whose answer no longer names subject_id in `cold_start`
   (visible on the very next pass), and the lag from the account's acknowledgement to the score's answer.
4. **/score under ingestion**: a service seeded from the simulated data (as the online suite's), single-report
   /score at 8 clients first alone (the baseline, same run), then while a second process sends 1,000 events/s
   (batches of 100 every 0.1 s, paced) of another marketplace (the same simulation with every id prefixed);
   with two workers and with one (full runs).
5. **worker start at scale**: `docket simulate` of 1M reports (tiny: 20,000), `docket import` into the store
   (timed), then a one-worker service on it: seconds to the log's "history read from the store", to /readyz,
   and the peak resident memory of the server's process tree (and of its largest process) until 15 s after ready.

Each step's failure becomes an error row; the others still run. Rows carry the load average at the step's start
(`load_avg_1m`) and the server's CPU per request (its process tree), as the online suite records them.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import online
from benchmarks.queue_bench import stores

REPO = online.REPO
BIN = online.BIN

SIM_REPORTS, SIM_REPORTS_TINY = online.FULL_REPORTS, online.TINY_REPORTS
INGEST_BATCH, INGEST_CLIENTS = 500, 2
SINGLE_CLIENTS = 8
FRESH_ROUNDS, FRESH_ROUNDS_TINY = 200, 20
PACED_BATCH, PACED_INTERVAL_S = 100, 0.1  # 1,000 events/s
SCORE_CLIENTS = 8
SCORE_REQUESTS_FACTOR = 3  # the /score cases send 3x config.requests (full: 6,000), so ingestion overlaps long enough
SCORE_WORKERS, SCORE_WORKERS_TINY = (2, 1), (2,)
SCALE_SETTLE_S = 15.0  # memory is sampled this long after /readyz too (the sweep rescores the imported reports)
SCALE_START_TIMEOUT_S = 900.0
SCALE_STEP_TIMEOUT_S = 3600.0  # simulate or import, each
SAMPLE_S = 0.25
EVENT_KINDS = ("accounts", "orders", "order_updates", "enforcements", "outcomes")  # what the timeline sends
RETRIES = 50  # a batch naming an account still in flight in the other client's batch is sent again (422)

# Issue 12's targets.
INGEST_TARGET_EPS = 5_000.0
SINGLE_P99_MS = 20.0
FRESH_TARGET_SHARE = 1.0
SCORE_P99_MS = 25.0
PACED_MIN_EPS = 950.0  # the ingestion must really have run at (about) 1,000 events/s for the /score target to count
SCALE_READY_S, SCALE_RSS_MB = 60.0, 4096.0
STORES = ("sqlite", "postgresql")


def run(config) -> list[dict]:
    """Every step on every store; a step that fails is an error row, the others go on."""
    work = Path(config.work_dir) / "live"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    rows: list[dict] = []
    try:
        prep = _prepare(work, config)
    except Exception as err:
        return [_error("prepare", "-", err)]
    for store in stores(config):
        rows += _guarded("ingest", store, lambda s=store: event_steps(config, work, prep, s))
        for workers in (SCORE_WORKERS_TINY if config.tiny else SCORE_WORKERS):
            rows += _guarded(f"score_under_ingestion w{workers}", store,
                             lambda s=store, w=workers: score_under_ingestion(config, work, prep, s, w))
    rows += _guarded("worker_start", "-", lambda: worker_start(config, work, prep))
    for row in rows:
        row["group"] = group_of(row["case"])
        if not config.tiny:
            judge(row)
    return rows


# The tables of results.md: one per step (benchmarks.run makes one table per `group`).
GROUPS = (("ingest", "1. ingestion (POST /events, batches of 500, 2 clients)"),
          ("single_event", "2. single-event requests (8 clients)"), ("freshness", "3. freshness (2 workers)"),
          ("score", "4. /score under ingestion (8 clients, 1,000 events/s sent in batches of 100)"),
          ("", "5. worker start at scale"))


def group_of(case: str) -> str:
    return next(title for prefix, title in GROUPS if case.startswith(prefix))


def _guarded(case: str, store: str, step: Callable[[], list[dict]]) -> list[dict]:
    try:
        return step()
    except Exception as err:  # one step failing must not lose the others' figures
        return [_error(case, store, err)]


def _error(case: str, store: str, err: BaseException) -> dict:
    return {"case": case, "store": store, "ok": False, "error": f"{type(err).__name__}: {err}"[:2000],
            "traceback": traceback.format_exc(limit=6), "load_avg_1m": load_1m()}


def load_1m() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


# --- targets -----------------------------------------------------------------------------------------------

def judge(row: dict) -> None:
    """`target` and `pass` on the rows a target of issue 12 applies to (full runs only)."""
    case = row.get("case", "")
    if row.get("error"):
        return
    if case == "ingest":
        row["target"] = f">= {INGEST_TARGET_EPS:,.0f} events/s, 0 errors, each record stored once"
        row["pass"] = (row["events_per_s"] or 0) >= INGEST_TARGET_EPS and row["errors"] == 0 \
            and bool(row.get("stored_once"))
    elif case == "single_event":
        row["target"] = f"p99 < {SINGLE_P99_MS:g} ms, 0 errors"
        row["pass"] = row["p99_ms"] is not None and row["p99_ms"] < SINGLE_P99_MS and row["errors"] == 0
    elif case == "freshness":
        row["target"] = f"{FRESH_TARGET_SHARE:.0%} visible on the next pass"
        row["pass"] = row["visible_share"] >= FRESH_TARGET_SHARE and row["errors"] == 0
    elif case == "score while ingesting":
        row["target"] = f"p99 < {SCORE_P99_MS:g} ms, 0 errors, >= {PACED_MIN_EPS:g} events/s ingested"
        row["pass"] = row["p99_ms"] is not None and row["p99_ms"] < SCORE_P99_MS and row["errors"] == 0 \
            and (row.get("ingest_events_per_s") or 0) >= PACED_MIN_EPS and row.get("ingest_errors") == 0
    elif case == "worker start":
        row["target"] = f"ready < {SCALE_READY_S:g} s, < {SCALE_RSS_MB / 1024:g} GB resident"
        row["pass"] = row.get("ready_s") is not None and row["ready_s"] < SCALE_READY_S \
            and row["peak_rss_mb"] < SCALE_RSS_MB


# --- pure helpers ------------------------------------------------------------------------------------------

def latency_summary(latencies_s: Sequence[float]) -> dict:
    """p50/p99/max/mean in ms of latencies in seconds (None when there are none)."""
    if not len(latencies_s):
        return {"p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    ms = np.asarray(latencies_s, dtype=float) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
            "max_ms": round(float(ms.max()), 3), "mean_ms": round(float(ms.mean()), 3)}


def due_at(start: float, interval_s: float, k: int) -> float:
    """When the k-th paced batch is due (0-based): on a fixed grid from `start`, so a late batch does not push the
    later ones back (the sender catches up by sending at once until it is on the grid again)."""
    return start + k * interval_s


def batch_bodies(events: Iterable[tuple[Any, str, dict]], size: int, kinds: Iterable[str] = EVENT_KINDS) -> list[dict]:
    """Consecutive events of the given kinds, in their order, as POST /events bodies of `size` records each."""
    wanted = set(kinds)
    bodies: list[dict] = []
    body: dict[str, list] = {}
    n = 0
    for _, kind, record in events:
        if kind not in wanted:
            continue
        body.setdefault(kind, []).append(record)
        n += 1
        if n == size:
            bodies.append(body)
            body, n = {}, 0
    if n:
        bodies.append(body)
    return bodies


ID_FIELDS = frozenset({"account_id", "order_id", "buyer_id", "seller_id", "show_id", "violation_id", "report_id",
                       "subject_id", "reporter_id"})


def relabel(record: dict, prefix: str) -> dict:
    """The record with every id it holds or names prefixed: the same marketplace as new accounts, orders, ..."""
    return {k: (prefix + v if k in ID_FIELDS and isinstance(v, str) else v) for k, v in record.items()}


def events_in(bodies: Iterable[dict]) -> int:
    return sum(len(v) for b in bodies for v in b.values())


def visible(answer: dict) -> bool:
    """A /score answer for one report knows its subject (not named in cold_start)."""
    return "subject_id" not in (answer.get("cold_start") or [])


def stored_once(stored: dict, expected: dict) -> dict:
    """Compare the store's tables (Market.tables()) with the simulation's: each record there exactly once.

    Returns {"ok", "counts": {table: [stored, expected]}, "problems": [...]}; order facts are compared per fact.
    """
    from serving.market.events import ORDER_FACTS

    keys = {"accounts": "account_id", "orders": "order_id", "enforcements": "violation_id", "outcomes": "report_id"}
    counts, problems = {}, []
    for name, key in keys.items():
        got, want = stored[name], expected[name]
        counts[name] = [len(got), len(want)]
        if len(got) != len(want):
            problems.append(f"{name}: {len(got)} stored, {len(want)} sent")
        if got[key].duplicated().any():
            problems.append(f"{name}: duplicate {key}")
        if set(got[key]) != set(want[key]):
            problems.append(f"{name}: the stored {key}s differ from those sent")
    if len(stored["orders"]) and len(expected["orders"]):
        got = stored["orders"].set_index("order_id")
        want = expected["orders"].set_index("order_id").reindex(got.index)
        for column in ORDER_FACTS.values():
            n_got, n_want = int(got[column].notna().sum()), int(want[column].notna().sum())
            counts[column] = [n_got, n_want]
            if n_got != n_want:
                problems.append(f"orders.{column}: {n_got} stored, {n_want} sent")
    return {"ok": not problems, "counts": counts, "problems": problems}


# --- preparation -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    data_dir: Path
    mlflow_uri: str
    bentoml_home: str
    tables: dict
    events: list  # the simulation's timeline, reports included
    score_bodies: list  # single-report /score bodies, as the online suite sends them


def _prepare(work: Path, config) -> Prepared:
    """Simulate, train (online.prepare, from the scratch folder so MLflow's files stay there), build the stream."""
    from features.io import load_tables
    from serving.market.events import timeline

    n = SIM_REPORTS_TINY if config.tiny else SIM_REPORTS
    (work / "prep").mkdir(parents=True, exist_ok=True)
    here = Path.cwd()
    os.chdir(work)
    try:
        env, _key, bodies = online.prepare(work / "prep", n, config.seed)
    finally:
        os.chdir(here)
    tables = load_tables(env["DOCKET_DATA_DIR"])
    return Prepared(Path(env["DOCKET_DATA_DIR"]), env["MLFLOW_TRACKING_URI"], env["BENTOML_HOME"], tables,
                    timeline(tables), bodies[("docket", "score", 1)])


@contextmanager
def _store(config, work: Path, store: str, purpose: str) -> Iterator[tuple[str, str]]:
    """A fresh store (queue_bench's: a new SQLite file, or a new PostgreSQL database dropped afterwards), migrated,
    with an admin key: (url, key)."""
    from benchmarks.queue_bench import store_url
    from serving.api.auth import create_key
    from serving.store.db import make_engine, migrate

    with store_url(config, work, store, purpose) as url:
        engine = make_engine(url)
        migrate(engine)
        key = create_key(engine, "admin", actor="benchmarks.live", now=datetime.now(UTC))
        engine.dispose()
        yield url, key


def _env(prep: Prepared, url: str, data_dir: Path, workers: int) -> dict[str, str]:
    return {"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": prep.mlflow_uri, "DOCKET_DATABASE_URL": url,
            "BENTOML_HOME": prep.bentoml_home, "DOCKET_WORKERS": str(workers), "DOCKET_RELOAD_SECONDS": "0"}


class Peak:
    """The largest resident memory of a process tree (and of one process in it), sampled on a thread."""

    def __init__(self, pid: int, every_s: float = 0.5):
        self.pid, self.every_s = pid, every_s
        self.tree_mb, self.process_mb = 0.0, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> None:
        self.tree_mb = max(self.tree_mb, online.tree_rss_mb(self.pid))
        self.process_mb = max(self.process_mb, max((_rss_mb(p) for p in online._tree(self.pid)), default=0.0))

    def _run(self) -> None:
        while True:
            self.sample()
            if self._done.wait(self.every_s):
                return

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _sender(url: str, key: str, bodies_file: Path, out: Path, *, clients: int = 1, interval_s: float = 0.0,
            log: Path) -> subprocess.Popen:
    """This module's event sender in its own process (see main)."""
    cmd = [sys.executable, "-m", "benchmarks.live_bench", "--url", url + "/events", "--bodies", str(bodies_file),
           "--clients", str(clients), "--interval", str(interval_s), "--header", f"Authorization: Bearer {key}",
           "--out", str(out)]
    with open(log, "w") as fh:
        return subprocess.Popen(cmd, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT)


# --- steps 1-3: one service on an empty store --------------------------------------------------------------

def event_steps(config, work: Path, prep: Prepared, store: str) -> list[dict]:
    """Ingest the simulation's events into an empty store, then single events, then freshness (two workers)."""
    empty = work / "no-data"
    empty.mkdir(exist_ok=True)
    rows: list[dict] = []
    with _store(config, work, store, "live") as (url, key), \
            online.serve_docket(_env(prep, url, empty, 2), work, f"service-events-{store}.log") as (base, pid):
        rows += _guarded("ingest", store, lambda: [ingest(base, key, pid, url, prep, work, store)])
        rows += _guarded("single_event", store, lambda: single_events(base, key, pid, url, prep, work, store, config))
        rows += _guarded("freshness", store, lambda: [freshness(base, key, pid, prep, store, config)])
    return rows


def ingest(base: str, key: str, pid: int, url: str, prep: Prepared, work: Path, store: str) -> dict:
    from policy.file import load_policy
    from serving.market.event_store import Market
    from serving.store.db import make_engine

    bodies = batch_bodies(prep.events, INGEST_BATCH)
    bodies_file = work / f"ingest-{store}.json"
    bodies_file.write_text(json.dumps(bodies))
    out = work / f"ingest-{store}-result.json"
    load, cpu0 = load_1m(), online.tree_cpu_s(pid)
    with Peak(pid) as peak:
        proc = _sender(base, key, bodies_file, out, clients=INGEST_CLIENTS, log=work / f"ingest-{store}.log")
        try:
            code = proc.wait(timeout=3600)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if code != 0:
            raise RuntimeError(f"event sender failed: {(work / f'ingest-{store}.log').read_text()[-2000:]}")
    server_cpu = online.tree_cpu_s(pid) - cpu0
    result = json.loads(out.read_text())
    engine = make_engine(url)
    try:
        _, tables = Market(engine, load_policy()).tables()
    finally:
        engine.dispose()
    check = stored_once(tables, prep.tables)
    return {"case": "ingest", "store": store, "workers": 2, "clients": INGEST_CLIENTS, "batch": INGEST_BATCH,
            "events": result["events"], "batches": result["batches"], "errors": result["errors"],
            "retries": result["retries"], "wall_s": result["elapsed_s"], "events_per_s": result["events_per_s"],
            "batches_per_s": result["batches_per_s"], "p50_ms": result["p50_ms"], "p99_ms": result["p99_ms"],
            "max_ms": result["max_ms"], "stored_reported": result["stored"], "already_known": result["already_known"],
            "stored_once": check["ok"], "store_check": "; ".join(check["problems"]) or "ok",
            "store_counts": check["counts"], "rss_mb": peak.tree_mb, "load_avg_1m": load,
            "server_cpu_ms_per_request": round(1000 * server_cpu / max(result["batches"], 1), 3),
            "server_cpu_ms_per_event": round(1000 * server_cpu / max(result["events"], 1), 4),
            "error_samples": result["error_samples"]}


SINGLE_MIXES = (("single_event", ("accounts", "order_updates")),  # issue 12's case: the target applies
                ("single_event accounts only", ("accounts",)), ("single_event order_updates only", ("order_updates",)))


def single_event_bodies(tables: dict, n: int, tag: str, now: datetime, kinds: Sequence[str] = ("accounts",
                        "order_updates"), first_order: int = 0) -> list[dict]:
    """n bodies of one event each, taking the kinds in turn: a new account, or a refund of a stored order not
    refunded yet (orders from index `first_order` of those, each once): every one a new row. A refund is dated
    a day after the order's last fact, as the contract wants."""
    orders = tables["orders"]
    open_ = orders[orders["refunded_at"].isna()].reset_index(drop=True)
    roles = tables["accounts"]["role"].astype(str).tolist()
    bodies, next_order = [], first_order
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "order_updates" and next_order < len(open_):
            order = open_.iloc[next_order]
            next_order += 1
            at = max(t for t in (order["created_at"], order["shipped_at"], order["delivered_at"])
                     if t is not None and t == t) + timedelta(days=1)
            bodies.append({"order_updates": [{"order_id": order["order_id"], "fact": "refunded",
                                              "at": at.isoformat()}]})
        else:
            bodies.append({"accounts": [{"account_id": f"{tag}-a{i:07d}", "created_at": now.isoformat(),
                                         "role": roles[i % len(roles)], "verified": bool(i % 3 == 0)}]})
    return bodies


def single_events(base: str, key: str, pid: int, url: str, prep: Prepared, work: Path, store: str,
                  config) -> list[dict]:
    """One event per request from 8 clients (the load generator): the mix of the target, then each kind alone."""
    from sqlalchemy import func, select

    from serving.store import tables as T
    from serving.store.db import make_engine

    rows, first_order = [], 0
    n = config.requests + 4 * SINGLE_CLIENTS + 64  # more than a run sends: every measured body is a new event
    engine = make_engine(url)
    try:
        for case, kinds in SINGLE_MIXES:
            tag = f"single-{uuid.uuid4().hex[:6]}"
            bodies = single_event_bodies(prep.tables, n, tag, datetime.now(UTC), kinds, first_order)
            first_order += sum(1 for b in bodies if "order_updates" in b)
            body_file = work / f"single-{store}-{len(rows)}.json"
            body_file.write_text(json.dumps(bodies))
            try:
                with engine.connect() as conn:
                    seq0 = conn.execute(select(T.event_counter.c.value)).scalar_one()
                result = online.drive(base + "/events", body_file, 1, SINGLE_CLIENTS, config,
                                      [f"Authorization: Bearer {key}"], pid, work / f"single-{store}-{len(rows)}.out")
                with engine.connect() as conn:
                    accounts = conn.execute(select(func.count()).select_from(T.market_accounts).where(
                        T.market_accounts.c.account_id.like(f"{tag}-%"), T.market_accounts.c.seq > seq0)).scalar_one()
                    refunds = conn.execute(select(func.count()).select_from(T.market_order_updates).where(
                        T.market_order_updates.c.fact == "refunded", T.market_order_updates.c.seq > seq0)).scalar_one()
            except Exception as err:
                rows.append(_error(case, store, err))
                continue
            sent = result["requests"] + result.get("warmup_requests", 0)
            # The load generator's warm-up and its measured requests both start at the first body, so the first
            # warm-up's worth of measured requests repeat bodies already stored (answered 200, "already_known"):
            # the new rows stored are the distinct bodies sent.
            distinct = max(result["requests"], result.get("warmup_requests", 0))
            rows.append({"case": case, "store": store, "workers": 2, "concurrency": SINGLE_CLIENTS,
                         **{k: result[k] for k in ("requests", "ok", "errors", "throughput_rps", "p50_ms", "p95_ms",
                                                   "p99_ms", "mean_ms", "warmup_requests", "rss_mb", "load_avg_1m",
                                                   "server_cpu_ms_per_request", "client_cpu_ms_per_request",
                                                   "error_samples")},
                         "events_sent": sent, "new_rows_stored": int(accounts) + int(refunds),
                         "distinct_bodies_sent": distinct})
    finally:
        engine.dispose()
    return rows


def freshness(base: str, key: str, pid: int, prep: Prepared, store: str, config) -> dict:
    """POST a new account, then at once /score a report about it on a fresh connection; N rounds."""
    import httpx

    rounds = FRESH_ROUNDS_TINY if config.tiny else FRESH_ROUNDS
    template = next(r for _, k, r in prep.events if k == "reports")
    reporter = prep.tables["accounts"]["account_id"].iloc[0]
    headers = {"Authorization": f"Bearer {key}"}
    tag = f"fresh-{uuid.uuid4().hex[:6]}"
    seen, lags, acks, errors, samples = [], [], [], 0, []
    load, cpu0 = load_1m(), online.tree_cpu_s(pid)
    for i in range(rounds):
        now = datetime.now(UTC)
        account = {"account_id": f"{tag}-{i:05d}", "created_at": now.isoformat(), "role": "seller", "verified": False}
        report = {**template, "report_id": f"{tag}-r{i:05d}", "subject_id": account["account_id"],
                  "reporter_id": reporter, "show_id": None, "order_id": None,
                  "created_at": (now + timedelta(seconds=1)).isoformat()}
        try:
            t0 = time.perf_counter()
            with httpx.Client(headers=headers, timeout=60) as http:  # one connection for the event
                posted = http.post(base + "/events", json={"accounts": [account]})
            acked = time.perf_counter()
            with httpx.Client(headers=headers, timeout=60) as http:  # a fresh one: either worker may answer
                scored = http.post(base + "/score", json={"reports": [report]})
            answered = time.perf_counter()
        except httpx.HTTPError as err:
            errors += 1
            samples.append(f"{type(err).__name__}: {err}")
            continue
        if posted.status_code != 200 or scored.status_code != 200:
            errors += 1
            samples.append(f"events {posted.status_code} / score {scored.status_code}: {scored.text[:200]}")
            continue
        seen.append(visible(scored.json()[0]))
        lags.append(answered - acked)
        acks.append(acked - t0)
    server_cpu = online.tree_cpu_s(pid) - cpu0
    lag, ack = latency_summary(lags), latency_summary(acks)
    return {"case": "freshness", "store": store, "workers": 2, "rounds": rounds, "errors": errors,
            "visible_at_once": int(sum(seen)), "visible_share": round(sum(seen) / rounds, 4),
            "lag_p50_ms": lag["p50_ms"], "lag_p99_ms": lag["p99_ms"], "lag_max_ms": lag["max_ms"],
            "ack_p50_ms": ack["p50_ms"], "ack_p99_ms": ack["p99_ms"], "load_avg_1m": load,
            "server_cpu_ms_per_request": round(1000 * server_cpu / max(2 * rounds, 1), 3),
            "error_samples": samples[:5]}


# --- step 4: /score under ingestion ------------------------------------------------------------------------

def score_under_ingestion(config, work: Path, prep: Prepared, store: str, workers: int) -> list[dict]:
    """Baseline /score at 8 clients, then the same while another process sends 1,000 events/s, same service."""
    prefix = f"x{workers}-"
    paced = batch_bodies(((at, kind, relabel(r, prefix)) for at, kind, r in prep.events), PACED_BATCH)
    paced_file = work / f"paced-{store}-{workers}.json"
    paced_file.write_text(json.dumps(paced))
    score_file = work / "score-bodies.json"
    score_file.write_text(json.dumps(prep.score_bodies))
    cfg = replace(config, requests=config.requests * SCORE_REQUESTS_FACTOR)
    rows = []
    with _store(config, work, store, f"score{workers}") as (url, key), \
            online.serve_docket(_env(prep, url, prep.data_dir, workers), work,
                                f"service-score-{store}-{workers}.log") as (base, pid):
        headers = [f"Authorization: Bearer {key}"]
        base_row = online.drive(base + "/score", score_file, 1, SCORE_CLIENTS, cfg, headers, pid,
                                work / f"score-{store}-{workers}-base.json")
        rows.append(_score_row("score baseline (no ingestion)", store, workers, base_row))
        out = work / f"paced-{store}-{workers}-result.json"
        cpu0 = online.tree_cpu_s(pid)
        sender = _sender(base, key, paced_file, out, interval_s=PACED_INTERVAL_S,
                         log=work / f"paced-{store}-{workers}.log")
        try:
            time.sleep(1.0)  # on the grid before the measurement starts
            if sender.poll() is not None:
                log = (work / f"paced-{store}-{workers}.log").read_text()
                raise RuntimeError(f"event sender exited: {log[-2000:]}")
            loaded = online.drive(base + "/score", score_file, 1, SCORE_CLIENTS, cfg, headers, pid,
                                  work / f"score-{store}-{workers}-ingesting.json")
        finally:
            sender.send_signal(signal.SIGTERM)
            try:
                sender.wait(timeout=60)
            except subprocess.TimeoutExpired:
                sender.kill()
                sender.wait()
        both_cpu = online.tree_cpu_s(pid) - cpu0
        paced_result = json.loads(out.read_text())
    row = _score_row("score while ingesting", store, workers, loaded)
    row.update(baseline_p99_ms=base_row["p99_ms"], baseline_p50_ms=base_row["p50_ms"],
               ingest_events=paced_result["events"], ingest_events_per_s=paced_result["events_per_s"],
               ingest_errors=paced_result["errors"], ingest_batch_p50_ms=paced_result["p50_ms"],
               ingest_batch_p99_ms=paced_result["p99_ms"], ingest_late_batches=paced_result["late_batches"],
               ingest_max_behind_s=paced_result["max_behind_s"], ingest_ran_out=paced_result["ran_out"],
               server_cpu_s_scoring_and_ingesting=round(both_cpu, 2))
    rows.append(row)
    return rows


def _score_row(case: str, store: str, workers: int, result: dict) -> dict:
    return {"case": case, "store": store, "workers": workers, "concurrency": SCORE_CLIENTS,
            **{k: result[k] for k in ("requests", "ok", "errors", "throughput_rps", "p50_ms", "p95_ms", "p99_ms",
                                      "mean_ms", "rss_mb", "load_avg_1m", "server_cpu_ms_per_request",
                                      "client_cpu_ms_per_request", "error_samples")}}


# --- step 5: worker start at scale -------------------------------------------------------------------------

def worker_start(config, work: Path, prep: Prepared) -> list[dict]:
    """Simulate at scale, then per store import it (`docket import`) and time a one-worker service's start."""
    n = getattr(config, "scale_reports", None) or (20_000 if config.tiny else 1_000_000)
    data = work / f"scale-data-{n}"
    env = {"MLFLOW_TRACKING_URI": prep.mlflow_uri, "BENTOML_HOME": prep.bentoml_home}
    load = load_1m()
    sim = timed_process([str(BIN / "docket"), "simulate", "--reports", str(n), "--seed", str(config.seed),
                         "--out", str(data), "--force"], env, work / "scale-simulate.log", SCALE_STEP_TIMEOUT_S)
    rows = [{"case": "simulate at scale", "store": "-", "reports": n, "wall_s": sim["wall_s"],
             "peak_rss_mb": sim["peak_rss_mb"], "load_avg_1m": load, **_tail_error(sim)}]
    if sim["returncode"] != 0:
        return rows
    for store in stores(config):
        rows += _guarded("worker start", store, lambda s=store: _start_at_scale(config, work, prep, data, n, s, env))
    return rows


def _tail_error(result: dict) -> dict:
    if result["returncode"] == 0:
        return {}
    return {"ok": False, "error": f"exit {result['returncode']}{' (timed out)' if result['timed_out'] else ''}: "
                                  f"{result['log_tail'][-1500:]}"}


def _start_at_scale(config, work: Path, prep: Prepared, data: Path, n: int, store: str, env: dict) -> list[dict]:
    empty = work / "no-data"
    empty.mkdir(exist_ok=True)
    rows = []
    with _store(config, work, store, "scale") as (url, key):
        load = load_1m()
        imp = timed_process([str(BIN / "docket"), "import", "--data", str(data)],
                            {**env, "DOCKET_DATABASE_URL": url}, work / f"scale-import-{store}.log",
                            SCALE_STEP_TIMEOUT_S)
        summary = re.search(r"imported .*", imp["log_tail"])
        rows.append({"case": "import at scale", "store": store, "reports": n, "wall_s": imp["wall_s"],
                     "peak_rss_mb": imp["peak_rss_mb"], "load_avg_1m": load,
                     "import_summary": summary.group(0)[:400] if summary else None, **_tail_error(imp)})
        if imp["returncode"] != 0:
            return rows
        rows.append(history_read(url, work / f"scale-history-{store}", store, n))
        start = time_start(_env(prep, url, empty, 1), work / f"scale-service-{store}.log", key, prep)
        rows.append({"case": "worker start", "store": store, "reports": n, "workers": 1, **start})
    return rows


def history_read(url: str, out: Path, store: str, n: int) -> dict:
    """What a worker does first, alone in a process: LiveFeed(Market(...)) (read the store's tables, build the
    snapshot), timed inside the process, with its peak memory."""
    load = load_1m()
    res = timed_process([sys.executable, "-m", "benchmarks.live_bench", "history", "--database-url", url,
                         "--out", str(out.with_suffix(".json"))], {}, out.with_suffix(".log"), SCALE_START_TIMEOUT_S)
    row = {"case": "history read (one process)", "store": store, "reports": n, "load_avg_1m": load,
           "process_wall_s": res["wall_s"], "peak_rss_mb": res["peak_rss_mb"], **_tail_error(res)}
    if res["returncode"] == 0:
        row.update(json.loads(out.with_suffix(".json").read_text()))
    return row


def _history_main(argv: list[str]) -> None:
    import logging
    import resource

    p = argparse.ArgumentParser(description="Time a worker's first history read (LiveFeed) from a store.")
    p.add_argument("--database-url", required=True)
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from policy.file import load_policy
    from serving.market.event_store import Market
    from serving.market.live_feed import LiveFeed
    from serving.store.db import make_engine

    engine = make_engine(a.database_url)
    t0 = time.perf_counter()
    feed = LiveFeed(Market(engine, load_policy()))
    read_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    feed.current()
    first_ms = round(1000 * (time.perf_counter() - t1), 1)
    snapshot = getattr(feed, "_snapshot", None)  # LiveFeed's own; only for the row counts
    counts = {k: len(v) for k, v in snapshot.tables.items()} if snapshot is not None else None
    a.out.write_text(json.dumps({"history_read_s": round(read_s, 2), "first_current_ms": first_ms,
                                 "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                                 "history_rows": counts}))


def timed_process(cmd: list[str], env: dict[str, str], log: Path, timeout_s: float) -> dict:
    """Run a command to its end (or the timeout) with its tree's memory sampled: wall_s, peak_rss_mb, returncode."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=online.server_env(env), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    timed_out = False
    try:
        with Peak(proc.pid, SAMPLE_S) as peak:
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        online._stop_group(proc)
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_rss_mb": peak.tree_mb,
            "returncode": proc.returncode if not timed_out else -1, "timed_out": timed_out,
            "log_tail": log.read_text(errors="replace")[-4000:]}


def time_start(env: dict[str, str], log: Path, key: str, prep: Prepared) -> dict:
    """Start `bentoml serve` on a filled store: seconds to /livez and to /readyz (history read and models loaded);
    the peak memory of its tree (and largest process) until SCALE_SETTLE_S after ready; one /score answered then.
    (The worker's own "history read from the store" line is logged at INFO, which `bentoml serve` drops: see
    history_read for that figure.)"""
    import httpx

    port = online._free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [str(BIN / "bentoml"), "serve", "serving.service:Docket", "--host", "127.0.0.1", "--port", str(port)]
    load = load_1m()
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=online.server_env(env), stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    out: dict[str, Any] = {"live_s": None, "ready_s": None}
    try:
        with Peak(proc.pid, SAMPLE_S) as peak:
            deadline = t0 + SCALE_START_TIMEOUT_S
            while out["ready_s"] is None:
                if proc.poll() is not None:
                    raise RuntimeError(f"bentoml exited with {proc.returncode}: {log.read_text()[-3000:]}")
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"not ready after {SCALE_START_TIMEOUT_S:g} s: {log.read_text()[-3000:]}")
                now = time.perf_counter() - t0
                try:
                    if out["live_s"] is None and httpx.get(base + "/livez", timeout=2).status_code == 200:
                        out["live_s"] = round(now, 2)
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        out["ready_s"] = round(time.perf_counter() - t0, 2)
                except httpx.HTTPError:
                    pass
                time.sleep(0.25)
            ready_tree, ready_process = peak.tree_mb, peak.process_mb
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
                t1 = time.perf_counter()
                res = http.post(base + "/score", json=prep.score_bodies[0])
                first_score_ms = round(1000 * (time.perf_counter() - t1), 1)
                status = res.status_code
            time.sleep(max(0.0, SCALE_SETTLE_S - (time.perf_counter() - t1)))
            rss_now = online.tree_rss_mb(proc.pid)
    finally:
        online._stop_group(proc)
    return {**out, "peak_rss_mb": peak.tree_mb, "peak_process_rss_mb": peak.process_mb,
            "rss_at_ready_mb": ready_tree, "process_rss_at_ready_mb": ready_process,
            "rss_after_settle_mb": rss_now, "first_score_ms": first_score_ms, "first_score_status": status,
            "load_avg_1m": load}


# --- the event sender (its own process) --------------------------------------------------------------------

def send(url: str, bodies: list[bytes], headers: dict[str, str], clients: int, interval_s: float,
         stop: threading.Event, sizes: Sequence[int] | None = None) -> dict:
    """POST the bodies in order: from `clients` connections as fast as answered (interval 0), or one connection
    paced on a grid of `interval_s` (due_at). A 422 naming an unknown account (its account is in a batch another
    client has in flight) is sent again. Stops early when `stop` is set."""
    import httpx

    headers = {"Content-Type": "application/json", **headers}
    sizes = list(sizes) if sizes is not None else [_events(b) for b in bodies]  # events per body
    lock = threading.Lock()
    state = {"next": 0, "events": 0, "errors": 0, "retries": 0, "late": 0, "behind": 0.0}
    latencies: list[float] = []
    samples: list[str] = []
    stored: dict[str, int] = {}
    known = 0
    start = time.perf_counter()

    def take() -> int | None:
        with lock:
            k = state["next"]
            if k >= len(bodies) or stop.is_set():
                return None
            state["next"] = k + 1
            return k

    def post(http: httpx.Client, k: int) -> None:
        nonlocal known
        for attempt in range(RETRIES + 1):
            t0 = time.perf_counter()
            try:
                res = http.post(url, content=bodies[k])
            except httpx.HTTPError as err:
                with lock:
                    state["errors"] += 1
                    samples.append(f"{type(err).__name__}: {err}")
                return
            took = time.perf_counter() - t0
            if res.status_code == 422 and "unknown account" in res.text and attempt < RETRIES:
                with lock:
                    state["retries"] += 1
                time.sleep(0.02)
                continue
            with lock:
                if res.status_code != 200:
                    state["errors"] += 1
                    samples.append(f"HTTP {res.status_code}: {res.text[:300]}")
                    return
                latencies.append(took)
                body = res.json()
                for kind, count in body.get("stored", {}).items():
                    stored[kind] = stored.get(kind, 0) + count
                known += sum(len(v) for v in body.get("already_known", {}).values())
                state["events"] += sizes[k]
            return

    def burst() -> None:
        with httpx.Client(headers=headers, timeout=120) as http:
            while (k := take()) is not None:
                post(http, k)

    if interval_s > 0:
        with httpx.Client(headers=headers, timeout=120) as http:
            while (k := take()) is not None:
                wait = due_at(start, interval_s, k) - time.perf_counter()
                if wait > 0:
                    if stop.wait(wait):
                        break
                elif -wait > interval_s:
                    state["late"] += 1
                    state["behind"] = max(state["behind"], -wait)
                post(http, k)
    else:
        threads = [threading.Thread(target=burst) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - start
    return {"events": state["events"], "batches": len(latencies), "errors": state["errors"],
            "retries": state["retries"], "elapsed_s": round(elapsed, 3),
            "events_per_s": round(state["events"] / elapsed, 1) if elapsed > 0 else 0.0,
            "batches_per_s": round(len(latencies) / elapsed, 2) if elapsed > 0 else 0.0,
            **latency_summary(latencies), "stored": stored, "already_known": known,
            "late_batches": state["late"], "max_behind_s": round(state["behind"], 3),
            "ran_out": state["next"] >= len(bodies) and not stop.is_set(), "error_samples": samples[:5]}


def _events(body: bytes) -> int:
    return sum(len(v) for v in json.loads(body).values())


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["history"]:
        return _history_main(argv[1:])
    p = argparse.ArgumentParser(description="POST /events bodies, as fast as answered or paced; writes a summary.")
    p.add_argument("--url", required=True)
    p.add_argument("--bodies", required=True, type=Path, help="JSON list of POST /events bodies, sent in order")
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--interval", type=float, default=0.0, help="seconds between batches (0: as fast as answered)")
    p.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("--out", required=True, type=Path)
    a = p.parse_args(argv)
    parsed = json.loads(a.bodies.read_text())
    bodies, sizes = [json.dumps(b).encode() for b in parsed], [events_in([b]) for b in parsed]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result = send(a.url, bodies, dict(h.split(": ", 1) for h in a.header), a.clients, a.interval, stop, sizes)
    a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
