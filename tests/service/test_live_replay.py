"""One code path, live and offline: a marketplace replayed through the HTTP API, in time order, is scored by the
live service exactly as the offline scorer scores the same reports from the tables the service exports."""
from __future__ import annotations

import os
import time
import uuid

import httpx
import pandas as pd
import pytest
from conftest import STORES, _postgres_database, make_keys, parse_metrics

from config import settings as S
from features.history import History
from features.validate import validate_tables
from policy.file import load_policy
from serving.market.event_store import Market
from serving.market.events import timeline
from serving.scoring.runtime import load_scorer
from serving.store.db import make_engine, migrate
from simulator.simulate import simulate

BATCH = 500


@pytest.fixture(scope="module")
def world() -> dict[str, pd.DataFrame]:
    tables = simulate(400, seed=5, days=40)
    return validate_tables({k: v for k, v in tables.items() if not k.startswith("truth")})


def _store(kind: str, tmp_path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'live.db'}"
    return _postgres_database(os.environ["DOCKET_TEST_POSTGRES_URL"], f"docket_live_{uuid.uuid4().hex[:8]}")


def _post(url: str, key: str, path: str, body: dict) -> httpx.Response:
    """A fresh connection per request, so consecutive requests may reach either worker. /readyz answered by one
    worker says nothing of the other: a 503 (that worker still loading its models) is retried."""
    deadline = time.monotonic() + 120
    while True:
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http:
            res = http.post(url + path, json=body)
        if res.status_code != 503 or time.monotonic() > deadline:
            return res
        time.sleep(0.5)


def replay(url: str, key: str, events: list) -> dict[str, dict]:
    """Send the events in time order (other events in batches, each report on its own: scored, then stored);
    returns each report's live score."""
    scores: dict[str, dict] = {}
    pending: dict[str, list] = {}

    def flush() -> None:
        if pending:
            res = _post(url, key, "/events", dict(pending))
            assert res.status_code == 200, res.text
            pending.clear()

    for _, kind, record in events:
        if kind != "reports":
            pending.setdefault(kind, []).append(record)
            if sum(len(v) for v in pending.values()) >= BATCH:
                flush()
            continue
        flush()
        res = _post(url, key, "/score", {"reports": [record]})
        assert res.status_code == 200, res.text
        scores[record["report_id"]] = res.json()[0]
        stored = _post(url, key, "/reports", {"reports": [record]})
        assert stored.status_code == 200 and stored.json()["accepted"] == [record["report_id"]], stored.text
    flush()
    return scores


@pytest.mark.slow
@pytest.mark.parametrize("store", STORES)
def test_live_scores_equal_offline_scores_of_the_exported_tables(store, world, trained, mlflow_uri, launch_service,
                                                                 tmp_path):
    url_db = _store(store, tmp_path)
    empty = tmp_path / "no-data"
    empty.mkdir()
    key = make_keys(url_db)["admin"]
    url = launch_service({"DOCKET_DATA_DIR": str(empty), "MLFLOW_TRACKING_URI": mlflow_uri,
                          "DOCKET_DATABASE_URL": url_db, "DOCKET_WORKERS": "2", "DOCKET_RELOAD_SECONDS": "0"})
    live = replay(url, key, timeline(world))

    engine = make_engine(url_db)
    migrate(engine)
    _, exported = Market(engine, load_policy()).tables()
    engine.dispose()
    for name in ("accounts", "orders", "enforcements", "outcomes"):
        assert len(exported[name]) == len(world[name]), name
    # Every report, and the cases the monitors opened as orders and shipping facts arrived (reports of their own:
    # transaction monitoring "tm-", fulfilment rules "fr-").
    monitored = set(exported["reports"]["report_id"]) - set(world["reports"]["report_id"])
    assert len(exported["reports"]) == len(world["reports"]) + len(monitored)
    assert {r[:3] for r in monitored} == {"tm-", "fr-"}
    rule_cases = [(r.split("-")[1], r.rsplit("-", 1)[1]) for r in monitored if r.startswith("fr-")]
    assert len(set(rule_cases)) == len(rule_cases)  # a rule firing day after day is one open case
    accepted = {dict(ls)["source"]: v for (n, ls), v in parse_metrics(httpx.get(f"{url}/metrics").text).items()
                if n == "docket_reports_accepted_total" and dict(ls)["scored_by"] == "model"}  # both workers'
    assert accepted == {"api": len(world["reports"]), "transactions": sum(r[:3] == "tm-" for r in monitored),
                        "fulfilment": len(rule_cases)}
    settings = S.Settings.from_env({"MLFLOW_TRACKING_URI": mlflow_uri})
    ours = exported["reports"][exported["reports"]["report_id"].isin(live)].reset_index(drop=True)
    offline = load_scorer(settings).score(ours, History.from_tables(exported))
    assert len(live) == len(offline) == len(world["reports"])
    for want in offline:
        got = live[want["report_id"]]
        assert got["cold_start"] == []
        for field in ("p_valid", "fraud_risk", "priority"):
            assert got[field] == pytest.approx(want[field], abs=1e-9), (want["report_id"], field)
        for level, p in want["severity_probabilities"].items():
            assert got["severity_probabilities"][level] == pytest.approx(p, abs=1e-9)
        assert [r["feature"] for r in got["reasons"]] == [r["feature"] for r in want["reasons"]]
