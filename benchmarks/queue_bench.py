"""Queue benchmarks: re-ranking the open cases, and intake through `POST /reports`, per store.

Re-rank: a store (SQLite file, and PostgreSQL when `postgres_url` is set) is filled
in bulk through the real tables with 100,000 open cases (tiny: 2,000), each with its
report, score and case link, plus a fifth as many closed cases; then `Queue.ranked(now)`
is timed cold (fresh engine) and warm (median of several runs), the pure ranking
(`rank_cases` on arrays already in memory) separately, and the first page of the queue
(`Queue.queue(now, 50)`, what `GET /queue?limit=50` runs).

Intake: the real service (`bentoml serve`) over a simulated data set, with trained models
in a private MLflow registry and an intake API key, takes 10,000 reports (tiny: 200) as
new report ids on accounts of the data, once with batches of 1 from a few concurrent
clients and once with batches of 100; every report must be stored exactly once.

`run(config)` returns one row per measurement: suite, case, store, n and the figures.
"""
from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import func, insert, select, text

from benchmarks.online import drive, quiet, report_records, serve_docket, tree_cpu_s
from features import vocabulary as V
from policy.file import load_queue_policy
from policy.queue import rank_cases
from serving.queue.cases import Queue, case_id_for
from serving.store import tables as T
from serving.store.db import make_engine, migrate, writing

RERANK_CASES, RERANK_CASES_TINY = 100_000, 2_000
INTAKE_REPORTS, INTAKE_REPORTS_TINY = 10_000, 200
SIM_REPORTS, SIM_REPORTS_TINY = 20_000, 2_000
WARM_RUNS, WARM_RUNS_TINY = 7, 3
INTAKE_CLIENTS = 4  # concurrent clients posting batches of one
INSERT_CHUNK = 5_000
RERANK_TARGET_MS = 300.0
STORES = ("sqlite", "postgresql")


def run(config) -> list[dict]:
    """All queue measurements for the stores the config names (SQLite always, PostgreSQL when postgres_url is set)."""
    work = Path(config.work_dir) / "queue"
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for store in stores(config):
        with store_url(config, work, store, "rerank") as url:
            rows += rerank(url, store, RERANK_CASES_TINY if config.tiny else RERANK_CASES, config.seed,
                           WARM_RUNS_TINY if config.tiny else WARM_RUNS)
    inputs = intake_inputs(config, work)
    rows += intake(config, work, inputs)
    rows += queue_load(config, work, inputs)
    return rows


def stores(config) -> list[str]:
    return ["sqlite"] + (["postgresql"] if getattr(config, "postgres_url", None) else [])


def per_store(config, purpose: str, measure) -> list[dict]:
    """One row per store, each measured over a fresh store with intake_inputs' data set, registry and reports:
    `measure(url, store, data_dir, mlflow_uri, reports, work)` (the fuzz and soak suites)."""
    work = Path(config.work_dir) / purpose
    work.mkdir(parents=True, exist_ok=True)
    data_dir, mlflow_uri, reports = intake_inputs(config, work)
    rows = []
    for store in stores(config):
        with store_url(config, work, store, purpose) as url:
            rows.append(measure(url, store, data_dir, mlflow_uri, reports, work))
    return rows


@contextmanager
def store_url(config, work: Path, store: str, purpose: str):
    """A fresh, empty database URL for one case: a new SQLite file, or a new PostgreSQL database dropped afterwards."""
    if store == "sqlite":
        path = work / f"{purpose}-{uuid.uuid4().hex[:8]}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    base = config.postgres_url
    name = f"docket_bench_{purpose}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = make_engine(base)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def load_average() -> str:
    """The load average, to read every timing beside (the machine may be shared)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def _row(case: str, store: str, n: int, **figures: Any) -> dict:
    return {"suite": "queue", "case": case, "store": store, "n": n, **figures, "load_avg": load_average()}


# ----------------------------------------------------------------------------------------------
# Re-rank


def fill_cases(engine, n_open: int, seed: int, now: datetime, id_length: int | None = None) -> int:
    """Bulk-insert n_open open cases and n_open // 5 closed ones, each with its report, score and case link.

    Categories follow a skewed mix, opened_at spreads over the last 30 days (so some cases
    are inside their goal, most are past it), base priorities are 0-100, and about one case
    in 500 is an alert case (tier above). Report ids are "bench-<number>", padded with "x" to
    `id_length` characters when given (the longest ids the API takes). Returns the number of rows in `cases`.
    """
    rng = np.random.default_rng(seed)
    qp = load_queue_policy()
    n = n_open + n_open // 5
    weights = rng.dirichlet(np.ones(len(V.CATEGORIES)) * 2)
    category = np.asarray(V.CATEGORIES)[rng.choice(len(V.CATEGORIES), n, p=weights)]
    opened_s = now.timestamp() - rng.exponential(4 * 86_400, n).clip(60, 30 * 86_400)
    base = np.round(rng.beta(2, 5, n) * 100, 4)
    tier = np.where(rng.random(n) < 0.002, qp.alert_tier, 0)
    status = np.array(["open"] * n_open + list(rng.choice(["resolved", "merged"], n - n_open, p=[0.8, 0.2])))
    subject = [f"a{k:07d}" for k in rng.integers(0, max(n // 4, 10), n)]
    reporter = [f"a{k:07d}" for k in rng.integers(0, max(n // 2, 10), n)]
    received = now - timedelta(minutes=1)
    with writing(engine) as conn:
        for lo in range(0, n, INSERT_CHUNK):
            idx = range(lo, min(lo + INSERT_CHUNK, n))
            reports, scores, cases, links = [], [], [], []
            for i in idx:
                rid = f"bench-{i:07d}"
                if id_length:
                    rid = f"{rid}-".ljust(id_length, "x")
                cat = str(category[i])
                opened = datetime.fromtimestamp(float(opened_s[i]), UTC)
                goal = qp.goals_hours[cat]
                reports.append(dict(report_id=rid, received_at=received, received_by="bench", created_at=opened,
                                    reporter_id=reporter[i], reporter_type="buyer", channel="livestream",
                                    subject_id=subject[i], show_id=None, order_id=None, category=cat,
                                    family=V.family_of(cat), description="benchmark report", evidence=None))
                scores.append(dict(report_id=rid, scored_at=received, scored_by="model", p_valid=0.5,
                                   severity="medium", fraud_risk=0.01, priority=float(base[i]),
                                   detail={"reasons": [], "model_versions": {"docket-severity": "1"}}))
                cases.append(dict(case_id=case_id_for(rid), kind="report" if tier[i] == 0 else "spike",
                                  opened_at=opened, subject_id=subject[i], family=V.family_of(cat), category=cat,
                                  deadline_at=opened + timedelta(hours=goal), goal_hours=goal,
                                  base_priority=float(base[i]), tier=int(tier[i]), status=str(status[i]),
                                  claimed_by=None, claim_expires_at=None, version=0, merged_into=None))
                links.append(dict(case_id=case_id_for(rid), report_id=rid, added_at=received))
            conn.execute(insert(T.intake_reports), reports)
            conn.execute(insert(T.report_scores), scores)
            conn.execute(insert(T.cases), cases)
            conn.execute(insert(T.case_reports), links)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        else:
            conn.exec_driver_sql("ANALYZE")
        return int(conn.execute(select(func.count()).select_from(T.cases)).scalar_one())


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def rerank(url: str, store: str, n_open: int, seed: int, runs: int) -> list[dict]:
    """Fill a store with n_open open cases and time Queue.ranked (cold, warm), rank_cases alone, and the first page."""
    now = datetime.now(UTC)
    engine = make_engine(url)
    migrate(engine)
    t0 = time.perf_counter()
    total_cases = fill_cases(engine, n_open, seed, now)
    fill_s = time.perf_counter() - t0
    engine.dispose()

    qp = load_queue_policy()
    engine = make_engine(url)  # cold: a new engine, nothing pooled, no statement cached
    queue = Queue(engine, qp, ledger=None)
    t0 = time.perf_counter()
    ranked = queue.ranked(now)
    cold = time.perf_counter() - t0
    if len(ranked) != n_open:
        raise AssertionError(f"{store}: ranked {len(ranked)} cases, expected the {n_open} open ones")
    warm, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        queue.ranked(now)
        warm.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)  # this process's CPU: less sensitive to a shared machine

    rng = np.random.default_rng(seed)
    ids = np.asarray([f"case-bench-{i:07d}" for i in range(n_open)], dtype=str)
    tier = np.where(rng.random(n_open) < 0.002, qp.alert_tier, 0)
    base = rng.beta(2, 5, n_open) * 100
    goal = rng.choice(list(qp.goals_hours.values()), n_open)
    opened = now.timestamp() - rng.exponential(4 * 86_400, n_open)
    pure = []
    for _ in range(runs):
        t0 = time.perf_counter()
        rank_cases(ids, tier, base, opened, goal, now.timestamp(), qp)
        pure.append(time.perf_counter() - t0)

    page = []
    for _ in range(runs):
        t0 = time.perf_counter()
        first = queue.queue(now, 50)
        page.append(time.perf_counter() - t0)
    if len(first) != 50:
        raise AssertionError(f"{store}: the first page has {len(first)} cases")
    engine.dispose()

    warm_ms = _ms(statistics.median(warm))
    return [
        _row("rerank", store, n_open, cases_in_store=total_cases, fill_s=round(fill_s, 2), cold_ms=_ms(cold),
             warm_ms=warm_ms, warm_min_ms=_ms(min(warm)), warm_cpu_ms=_ms(statistics.median(cpu)), cases_per_s=round(n_open / statistics.median(warm)),
             target_ms=RERANK_TARGET_MS, meets_target=warm_ms < RERANK_TARGET_MS and _ms(cold) < RERANK_TARGET_MS,
             runs=runs),
        _row("rank_cases", store, n_open, warm_ms=_ms(statistics.median(pure)),
             cases_per_s=round(n_open / statistics.median(pure)), runs=runs),
        _row("queue_page_50", store, n_open, warm_ms=_ms(statistics.median(page)), runs=runs),
    ]


# ----------------------------------------------------------------------------------------------
# Intake


def intake(config, work: Path, inputs: tuple[Path, str, list[dict]] | None = None) -> list[dict]:
    """Simulate data, train models (or take `inputs` from intake_inputs), then per store start the service and
    post reports at batch sizes 1 and 100."""
    data_dir, mlflow_uri, requests = inputs or intake_inputs(config, work)
    rows: list[dict] = []
    for store in stores(config):
        with store_url(config, work, store, "intake") as url:
            rows += _intake_store(url, store, data_dir, mlflow_uri, requests, work)
    return rows


def intake_inputs(config, work: Path) -> tuple[Path, str, list[dict]]:
    """The simulated data set, a registry with trained models, and the reports to post (new ids, real accounts)."""
    from config import settings as S
    from features.io import load_tables, write_tables
    from simulator.simulate import simulate
    from training.train import train

    n_sim = SIM_REPORTS_TINY if config.tiny else SIM_REPORTS
    data_dir = work / f"data-{n_sim}-{config.seed}"
    if not (data_dir / "accounts.parquet").exists() and not any(data_dir.glob("accounts.*")):
        write_tables(simulate(n_sim, seed=config.seed), data_dir)
    tables = load_tables(data_dir)
    mlflow_uri = f"sqlite:///{work / f'mlflow-{uuid.uuid4().hex[:8]}.db'}"
    settings = S.Settings.from_env({"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": mlflow_uri})
    here = Path.cwd()
    os.chdir(work)  # MLflow writes artifacts under ./mlruns: keep them in the scratch folder
    try:
        train(tables, settings, rules=load_queue_policy())
    finally:
        os.chdir(here)
    return data_dir, mlflow_uri, _requests(tables["reports"], INTAKE_REPORTS_TINY if config.tiny else INTAKE_REPORTS,
                                           config.seed)


def _requests(reports: pd.DataFrame, n: int, seed: int) -> list[dict]:
    """n reports as JSON: rows of the data set resampled onto the last day, with new report ids."""
    rng = np.random.default_rng(seed)
    picked = reports.iloc[rng.integers(0, len(reports), n)].reset_index(drop=True)
    # recent (the last day of the data) so spike detection has its usual day of reports to look back over
    end = reports["created_at"].max()
    picked["created_at"] = end - pd.to_timedelta(np.sort(rng.uniform(0, 86_400, n))[::-1], unit="s")
    picked["report_id"] = [f"bench-{uuid.uuid4().hex[:10]}" for _ in range(n)]
    return report_records(picked[list(_REPORT_FIELDS)])


_REPORT_FIELDS = ("report_id", "created_at", "reporter_id", "reporter_type", "channel", "subject_id", "show_id",
                  "order_id", "category", "description")


def _intake_store(url: str, store: str, data_dir: Path, mlflow_uri: str, requests: list[dict],
                  work: Path) -> list[dict]:
    import httpx

    from serving.api.auth import create_key

    engine = make_engine(url)
    migrate(engine)
    key = create_key(engine, "intake", actor="bench", now=datetime.now(UTC))
    admin = create_key(engine, "admin", actor="bench", now=datetime.now(UTC))
    rows = []
    with serve_docket(service_env(url, data_dir, mlflow_uri, work), work, f"service-{store}.log") as (base, pid):
        half = len(requests) // 2
        for batch, chunk, clients in ((1, requests[:half], INTAKE_CLIENTS), (100, requests[half:], 1)):
            rows.append(post_reports(base, key, chunk, batch, clients, store, pid))
        with httpx.Client(headers={"Authorization": f"Bearer {admin}"}, timeout=120) as http:
            lat = []
            for _ in range(5):
                t0 = time.perf_counter()
                res = http.get(f"{base}/queue", params={"limit": 50})
                lat.append(time.perf_counter() - t0)
                res.raise_for_status()
        open_cases = _count_open(engine)
        rows.append(_row("http_queue_50", store, open_cases, p50_ms=_ms(statistics.median(lat)),
                         max_ms=_ms(max(lat)), runs=len(lat)))
    stored = _stored_once(engine, [r["report_id"] for r in requests])
    engine.dispose()
    for row in rows:
        if row["case"].startswith("intake"):
            # checked over every report posted to this store (both batch sizes)
            row.update(stored_once=stored["ok"], posted_to_store=len(requests), stored=stored["stored"],
                       duplicates=stored["duplicates"])
    return rows


def service_env(url: str, data_dir: Path, mlflow_uri: str, work: Path) -> dict[str, str]:
    """The environment of a service over the store at `url` with intake_inputs' data and registry (no hot reload)."""
    return {"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": mlflow_uri, "DOCKET_DATABASE_URL": url,
            "DOCKET_RELOAD_SECONDS": "0", "BENTOML_HOME": str(work / "bentoml")}


def post_reports(base: str, key: str, reports: list[dict], batch: int, clients: int, store: str, server_pid: int) -> dict:
    """POST the reports in batches from `clients` threads; per-request latency, errors and throughput.

    Also the server's CPU time (its process tree, as the online suite measures it) per request: how much work a
    request is, which depends far less than the latencies on the clients sharing the machine with the server.
    """
    import httpx

    batches = [reports[i:i + batch] for i in range(0, len(reports), batch)]
    latencies: list[float] = []
    errors: list[str] = []
    accepted = 0

    def post(http: httpx.Client, body: list[dict]) -> None:
        nonlocal accepted
        t0 = time.perf_counter()
        try:
            res = http.post(f"{base}/reports", json={"reports": body})
            latencies.append(time.perf_counter() - t0)
            if res.status_code != 200:
                errors.append(f"{res.status_code}: {res.text[:200]}")
            else:
                accepted += len(res.json()["accepted"])
        except httpx.HTTPError as err:
            errors.append(f"{type(err).__name__}: {err}")

    def worker(part: list[list[dict]]) -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            for body in part:
                post(http, body)

    t0, cpu0 = time.perf_counter(), tree_cpu_s(server_pid)
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, [batches[k::clients] for k in range(clients)]))
    wall, server_cpu = time.perf_counter() - t0, tree_cpu_s(server_pid) - cpu0
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    return _row(f"intake_batch_{batch}", store, len(reports), batch=batch, clients=clients,
                reports_per_s=round(len(reports) / wall, 1), p50_ms=_ms(float(np.percentile(lat, 50))),
                p99_ms=_ms(float(np.percentile(lat, 99))), requests=len(batches), errors=len(errors),
                accepted=accepted, first_error=errors[0] if errors else None, wall_s=round(wall, 2),
                server_cpu_ms_per_request=round(1000 * server_cpu / max(len(batches), 1), 3))


def _count_open(engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(T.cases)
                                .where(T.cases.c.status == "open")).scalar_one())


def _stored_once(engine, report_ids: list[str]) -> dict:
    """Every posted report is in intake_reports exactly once (and has its own case link)."""
    with engine.connect() as conn:
        stored = _counts(conn.execute(select(T.intake_reports.c.report_id)
                                         .where(T.intake_reports.c.report_id.like("bench-%"))).scalars())
    missing = [r for r in report_ids if stored.get(r, 0) == 0]
    dupes = sum(1 for v in stored.values() if v > 1)
    return {"ok": not missing and not dupes and len(stored) == len(report_ids), "stored": sum(stored.values()),
            "duplicates": dupes}


def _counts(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[v] = out.get(v, 0) + 1
    return out


# ----------------------------------------------------------------------------------------------
# GET /queue under load


QUEUE_LOAD_CASES, QUEUE_LOAD_CASES_TINY = 100_000, 2_000
QUEUE_LOAD_CLIENTS = 8
QUEUE_LOAD_WORKERS, QUEUE_LOAD_WORKERS_TINY = (1, 2), (1,)
QUEUE_ID_LENGTHS = (None, 128)  # ordinary ids, and the longest the API takes (issue 15: "whatever the ids' lengths")
QUEUE_P99_TARGET_MS = 100.0


def queue_load(config, work: Path, inputs: tuple[Path, str, list[dict]]) -> list[dict]:
    """GET /queue?limit=50 from 8 concurrent clients against the real service over 100,000 open cases (tiny:
    2,000), per store, id length and worker count: p50/p99 latency, the server's CPU per request, the load average.

    The clients are the load generator in its own process (benchmarks.loadgen, as the online suite drives
    /score): eight client threads in this interpreter spent their own CPU parsing 50-case pages under one GIL,
    on the same two cores as the server, and their queueing was counted as the server's latency."""
    data_dir, mlflow_uri, _ = inputs
    n = QUEUE_LOAD_CASES_TINY if config.tiny else QUEUE_LOAD_CASES
    rows = []
    for store in stores(config):
        for id_length in QUEUE_ID_LENGTHS:
            with store_url(config, work, store, "queueload") as url:
                rows += _queue_load_store(url, store, n, id_length, data_dir, mlflow_uri, work, config)
    return rows


def _queue_load_store(url: str, store: str, n: int, id_length: int | None, data_dir: Path, mlflow_uri: str,
                      work: Path, config) -> list[dict]:
    from serving.api.auth import create_key

    engine = make_engine(url)
    migrate(engine)
    fill_cases(engine, n, config.seed, datetime.now(UTC), id_length=id_length)
    key = create_key(engine, "investigator", actor="bench", now=datetime.now(UTC))
    engine.dispose()
    bodies = work / "queue-get.json"
    bodies.write_text(json.dumps([None]))
    rows = []
    for workers in QUEUE_LOAD_WORKERS_TINY if config.tiny else QUEUE_LOAD_WORKERS:
        env = {**service_env(url, data_dir, mlflow_uri, work), "DOCKET_WORKERS": str(workers)}
        with serve_docket(env, work, f"service-queueload-{store}-{workers}.log") as (base, pid):
            quiet(pid)  # the start-up sweep (rescoring, the monitors' first run) is not the queue's own time
            result = drive(f"{base}/queue?limit=50", bodies, 50, QUEUE_LOAD_CLIENTS, config,
                           [f"Authorization: Bearer {key}"], pid, work / f"queueload-{store}-{workers}.json",
                           method="GET")
        rows.append(_row("http_queue_load" + (f"_id{id_length}" if id_length else ""), store, n,
                         clients=QUEUE_LOAD_CLIENTS, workers=workers, id_length=id_length or len("bench-0000000"),
                         requests=result["requests"], p50_ms=result["p50_ms"], p99_ms=result["p99_ms"],
                         requests_per_s=result["throughput_rps"], errors=result["errors"],
                         first_error=(result["error_samples"] or [None])[0],
                         server_cpu_ms_per_request=result["server_cpu_ms_per_request"],
                         client_cpu_ms_per_request=result["client_cpu_ms_per_request"], rss_mb=result["rss_mb"],
                         target=f"p99 < {QUEUE_P99_TARGET_MS:.0f} ms at {QUEUE_LOAD_CLIENTS} clients, "
                                f"100,000 open cases",
                         **{"pass": None if config.tiny else (result["p99_ms"] < QUEUE_P99_TARGET_MS
                                                              and not result["errors"])}))
    return rows
