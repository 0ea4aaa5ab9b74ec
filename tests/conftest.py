"""Shared fixtures: one small simulated marketplace and one real training run per test session."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sqlalchemy import Engine, text

from config import settings as S
from features.io import load_tables, write_tables
from serving.store.db import make_engine, migrate
from simulator.simulate import simulate

SMALL_REPORTS = 20_000
SEED = 11


def pytest_addoption(parser) -> None:
    parser.addoption("--screenshots", metavar="DIR", default=None,
                     help="save the browser tests' console screenshots in DIR (`make screenshots` uses docs/img, "
                          "which the README shows); by default they go to build/screenshots/")


@pytest.fixture(scope="session")
def sim_tables() -> dict:
    return simulate(SMALL_REPORTS, seed=SEED)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, sim_tables) -> Path:
    path = tmp_path_factory.mktemp("data")
    write_tables(sim_tables, path)
    return path


@pytest.fixture(scope="session")
def tables(data_dir) -> dict:
    """The simulated tables as the rest of Docket sees them: loaded and validated."""
    return load_tables(data_dir)


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def settings(data_dir, mlflow_uri) -> S.Settings:
    return S.Settings.from_env({"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": mlflow_uri})


@pytest.fixture(scope="session")
def trained(tables, settings):
    """A real training run registered in a throwaway MLflow registry (the first, so champion too)."""
    from policy.file import load_queue_policy
    from training.train import train

    return train(tables, settings, rules=load_queue_policy())


def as_request(reports: pd.DataFrame) -> list[dict]:
    """Rows of the reports table as the JSON other systems send."""
    out = []
    for row in reports.to_dict("records"):
        out.append({k: (v.isoformat() if isinstance(v, pd.Timestamp) else (None if pd.isna(v) else v))
                    for k, v in row.items()})
    return out


ORDER_TIMES = ["shipped_at", "delivered_at", "cancelled_at", "refunded_at", "fraud_known_at"]


def known_at(tables: dict, t: pd.Timestamp) -> dict:
    """The data as it stood at t: later rows dropped, later timestamps on earlier rows erased."""
    out = dict(tables)
    out["reports"] = tables["reports"][tables["reports"]["created_at"] <= t]
    out["outcomes"] = tables["outcomes"][tables["outcomes"]["resolved_at"] <= t]
    out["enforcements"] = tables["enforcements"][tables["enforcements"]["decided_at"] <= t]
    orders = tables["orders"][tables["orders"]["created_at"] <= t].copy()
    for col in ORDER_TIMES:
        orders.loc[orders[col] > t, col] = pd.NaT
    out["orders"] = orders
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(env_overrides: dict[str, str], log_path: Path, timeout: float = 180.0, wait_ready: bool = True):
    """Start `bentoml serve` for real and (by default) wait until /readyz says ready; returns (process, base_url)."""
    port = _free_port()
    env = {**os.environ, **env_overrides, "BENTOML_HOME": str(log_path.parent / "bentoml")}
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "bentoml"), "serve", "serving.service:Docket",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[1], env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    probe = "/readyz" if wait_ready else "/livez"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}{probe}", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise RuntimeError(f"service not ready after {timeout}s: {log_path.read_text()[-3000:]}")


def stop_service(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _postgres_database(base_url: str, name: str) -> str:
    """Create an empty database beside DOCKET_TEST_POSTGRES_URL's and return its URL."""
    import sqlalchemy as sa

    engine = make_engine(base_url)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base_url.rsplit("/", 1)[0] + f"/{name}"


STORES = ["sqlite"] + (["postgresql"] if os.environ.get("DOCKET_TEST_POSTGRES_URL") else [])


@pytest.fixture(scope="session", params=STORES)
def store_url(request, tmp_path_factory) -> str:
    """A fresh database for a service: SQLite always, PostgreSQL when DOCKET_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'docket.db'}"
    return _postgres_database(os.environ["DOCKET_TEST_POSTGRES_URL"], f"docket_test_{os.getpid()}")


@pytest.fixture(scope="session")
def service(trained, data_dir, mlflow_uri, store_url, tmp_path_factory):
    proc, url = start_service(
        {"DOCKET_DATA_DIR": str(data_dir), "MLFLOW_TRACKING_URI": mlflow_uri, "DOCKET_DATABASE_URL": store_url},
        tmp_path_factory.mktemp("service") / "service.log",
    )
    yield url
    stop_service(proc)


def make_keys(database_url: str) -> dict[str, str]:
    """One API key per role in the given store (migrated first)."""
    from datetime import UTC, datetime

    from serving.api.auth import ROLES, create_key

    engine = make_engine(database_url)
    migrate(engine)
    keys = {role: create_key(engine, role, actor="tests", now=datetime.now(UTC)) for role in ROLES}
    engine.dispose()
    return keys


@pytest.fixture(scope="session")
def keys(service, store_url) -> dict[str, str]:
    return make_keys(store_url)


def client(key: str | None) -> httpx.Client:
    return httpx.Client(headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=120)


def every_page(http: httpx.Client, url: str, **params) -> list:
    """Every item of a paged GET (/queue, /audit), following the Next-Cursor header to the last page."""
    items: list = []
    while True:
        res = http.get(url, params=params)
        res.raise_for_status()
        items += res.json()
        if "Next-Cursor" not in res.headers:
            return items
        params = {**params, "cursor": res.headers["Next-Cursor"]}


@pytest.fixture(scope="session")
def api(keys) -> httpx.Client:
    """An HTTP client holding the admin key."""
    return client(keys["admin"])


@pytest.fixture
def launch_service(tmp_path):
    """Start extra service processes in a test; every one is stopped afterwards."""
    procs = []

    def launch(env: dict[str, str], wait_ready: bool = True) -> str:
        proc, url = start_service(env, tmp_path / f"service-{len(procs)}.log", wait_ready=wait_ready)
        procs.append(proc)
        return url

    yield launch
    for proc in procs:
        stop_service(proc)


# ---------------------------------------------------------------------------
# One fresh, migrated store per test: SQLite always, PostgreSQL when DOCKET_TEST_POSTGRES_URL is set.

PG_URL = os.environ.get("DOCKET_TEST_POSTGRES_URL")


def _sqlite(tmp_path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'docket.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def _postgres() -> Iterator[Engine]:
    """A schema of its own per test, dropped afterwards, so tests never see each other's rows."""
    schema = f"docket_test_{uuid.uuid4().hex}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set DOCKET_TEST_POSTGRES_URL to run store tests on PostgreSQL"))])
def engine(request, tmp_path) -> Iterator[Engine]:
    yield from (_sqlite(tmp_path) if request.param == "sqlite" else _postgres())


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text as {(name, labels): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if match:
            labels = tuple(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            out[(match.group(1), labels)] = float(match.group(3))
    return out
