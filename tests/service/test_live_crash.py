"""Nothing acknowledged is lost: a worker killed (SIGKILL) while events stream in, then the stream finished with
retries, leaves every acknowledged record in the store exactly once."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import make_keys, start_service, stop_service

from features.validate import validate_tables
from policy.file import load_policy
from serving.market.event_store import Market
from serving.market.events import timeline
from serving.store.db import make_engine, migrate
from simulator.simulate import simulate

BATCH = 40
KEYS = {"accounts": "account_id", "orders": "order_id", "enforcements": "violation_id", "outcomes": "report_id"}


def _workers(pid: int) -> list[int]:
    """The service's worker processes (BentoML's workers run `_bentoml_impl.worker`)."""
    from benchmarks.online import _tree

    out = []
    for p in _tree(pid):
        try:
            if b"_bentoml_impl.worker" in Path(f"/proc/{p}/cmdline").read_bytes():
                out.append(p)
        except OSError:
            continue
    return out


def _send(url: str, key: str, body: dict, deadline: float) -> httpx.Response:
    """POST until answered (a killed worker drops its connections; the retry is idempotent)."""
    while True:
        try:
            with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
                res = http.post(url + "/events", json=body)
            if res.status_code < 500:
                return res
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the service did not come back"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_worker_killed_mid_stream_loses_nothing_acknowledged(tmp_path):
    world = validate_tables({k: v for k, v in simulate(300, seed=9, days=30).items() if not k.startswith("truth")})
    events = [(kind, record) for _, kind, record in timeline(world) if kind != "reports"]
    batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
    store = f"sqlite:///{tmp_path / 'crash.db'}"
    key = make_keys(store)["intake"]
    (tmp_path / "no-data").mkdir()
    proc, url = start_service({"DOCKET_DATA_DIR": str(tmp_path / "no-data"), "DOCKET_DATABASE_URL": store,
                               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'none.db'}"},
                              tmp_path / "service.log", wait_ready=False)
    acknowledged: dict[str, set] = {k: set() for k in KEYS}
    killed = []
    try:
        deadline = time.monotonic() + 300
        for i, batch in enumerate(batches):
            body: dict[str, list] = {}
            for kind, record in batch:
                body.setdefault(kind, []).append(record)
            if i == len(batches) // 3:
                killed = _workers(proc.pid)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
            res = _send(url, key, body, deadline)
            assert res.status_code == 200, res.text
            for kind, records in body.items():
                if kind in KEYS:
                    acknowledged[kind] |= {r[KEYS[kind]] for r in records}
    finally:
        stop_service(proc)
    assert killed, "no worker process found to kill"
    engine = make_engine(store)
    migrate(engine)
    _, stored = Market(engine, load_policy()).tables()
    engine.dispose()
    for kind, ids in acknowledged.items():
        have = stored[kind][KEYS[kind]]
        assert have.is_unique, kind
        assert ids <= set(have), (kind, len(ids - set(have)))
        assert len(have) == len(world[kind]), kind
    facts = stored["orders"].set_index("order_id")[["shipped_at", "delivered_at", "fraud_known_at"]]
    truth = world["orders"].set_index("order_id")[["shipped_at", "delivered_at", "fraud_known_at"]]
    pd.testing.assert_frame_equal(facts.sort_index(), truth.sort_index(), check_dtype=False)
