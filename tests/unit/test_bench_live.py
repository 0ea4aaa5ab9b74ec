"""The live benchmark: its pure helpers, the event sender against a stub server, and a tiny end-to-end run (SQLite)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import live_bench as L
from benchmarks.config import BenchConfig


def test_latency_summary_in_ms():
    out = L.latency_summary([0.001 * k for k in range(1, 101)])
    assert out["p50_ms"] == pytest.approx(50.5) and out["p99_ms"] == pytest.approx(99.01)
    assert out["max_ms"] == pytest.approx(100.0) and out["mean_ms"] == pytest.approx(50.5)
    assert L.latency_summary([]) == {"p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}


def test_pacing_is_a_fixed_grid_so_a_late_batch_does_not_push_the_rest_back():
    assert [L.due_at(10.0, 0.1, k) for k in (0, 1, 10)] == pytest.approx([10.0, 10.1, 11.0])


def test_batch_bodies_keep_time_order_skip_reports_and_cut_at_the_size():
    t = pd.Timestamp("2025-01-01", tz="UTC")
    events = [(t, "accounts", {"account_id": "a1"}), (t, "reports", {"report_id": "r1"}),
              (t, "orders", {"order_id": "o1"}), (t, "order_updates", {"order_id": "o1", "fact": "shipped"}),
              (t, "accounts", {"account_id": "a2"}), (t, "outcomes", {"report_id": "r1"})]
    bodies = L.batch_bodies(events, 2)
    assert bodies == [{"accounts": [{"account_id": "a1"}], "orders": [{"order_id": "o1"}]},
                      {"order_updates": [{"order_id": "o1", "fact": "shipped"}], "accounts": [{"account_id": "a2"}]},
                      {"outcomes": [{"report_id": "r1"}]}]
    assert L.events_in(bodies) == 5


def test_relabel_prefixes_every_id_and_nothing_else():
    order = {"order_id": "o1", "buyer_id": "a1", "seller_id": "a2", "show_id": "s1", "amount": 3.5,
             "created_at": "2025-01-01T00:00:00+00:00", "ship_by": None}
    assert L.relabel(order, "x-") == {**order, "order_id": "x-o1", "buyer_id": "x-a1", "seller_id": "x-a2",
                                      "show_id": "x-s1"}


def test_visible_reads_cold_start():
    assert L.visible({"cold_start": []}) and L.visible({"cold_start": ["order_id"]})
    assert not L.visible({"cold_start": ["subject_id"]})


def _tables(n_accounts: int, facts: dict[str, list]) -> dict[str, pd.DataFrame]:
    t = pd.Timestamp("2025-01-01", tz="UTC")
    orders = pd.DataFrame({"order_id": ["o1", "o2"], "created_at": [t, t], "shipped_at": [t, pd.NaT],
                           "delivered_at": [pd.NaT, pd.NaT], "cancelled_at": [pd.NaT, pd.NaT],
                           "refunded_at": [pd.NaT, pd.NaT], "fraud_known_at": [pd.NaT, pd.NaT]})
    for column, values in facts.items():
        orders[column] = values
    return {"accounts": pd.DataFrame({"account_id": [f"a{i}" for i in range(n_accounts)], "role": "buyer"}),
            "orders": orders, "enforcements": pd.DataFrame({"violation_id": ["v1"]}),
            "outcomes": pd.DataFrame({"report_id": ["r1"]})}


def test_stored_once_compares_counts_keys_and_order_facts():
    sent = _tables(2, {})
    assert L.stored_once(_tables(2, {}), sent)["ok"]
    short = L.stored_once(_tables(1, {}), sent)
    assert not short["ok"] and short["counts"]["accounts"] == [1, 2]
    t = pd.Timestamp("2025-01-02", tz="UTC")
    extra_fact = L.stored_once(_tables(2, {"delivered_at": [t, pd.NaT]}), sent)
    assert extra_fact["problems"] == ["orders.delivered_at: 1 stored, 0 sent"]
    twice = _tables(2, {})
    twice["accounts"] = pd.concat([twice["accounts"], twice["accounts"].iloc[[0]]], ignore_index=True)
    assert any("duplicate" in p for p in L.stored_once(twice, sent)["problems"])


def test_single_event_bodies_are_new_rows_each_order_once_and_dated_after_the_order():
    tables = _tables(3, {})
    tables["accounts"]["role"] = ["buyer", "seller", "buyer"]
    now = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()
    bodies = L.single_event_bodies(tables, 5, "t", now)
    kinds = [next(iter(b)) for b in bodies]
    assert kinds == ["accounts", "order_updates", "accounts", "order_updates", "accounts"]
    updates = [b["order_updates"][0] for b in bodies if "order_updates" in b]
    assert [u["order_id"] for u in updates] == ["o1", "o2"] and {u["fact"] for u in updates} == {"refunded"}
    assert updates[0]["at"] == "2025-01-02T00:00:00+00:00"  # a day after the order's last fact
    ids = [b["accounts"][0]["account_id"] for b in bodies if "accounts" in b]
    assert len(set(ids)) == len(ids) == 3
    # Orders run out: the rest are new accounts; an offset skips orders another case used.
    assert [next(iter(b)) for b in L.single_event_bodies(tables, 4, "u", now, ("order_updates",), 1)] == \
        ["order_updates", "accounts", "accounts", "accounts"]


def test_judge_sets_targets_only_where_issue_12_has_one():
    rows = [{"case": "ingest", "events_per_s": 6000.0, "errors": 0, "stored_once": True},
            {"case": "single_event", "p99_ms": 25.0, "errors": 0},
            {"case": "single_event accounts only", "p99_ms": 5.0, "errors": 0},
            {"case": "freshness", "visible_share": 1.0, "errors": 0},
            {"case": "score while ingesting", "p99_ms": 20.0, "errors": 0, "ingest_events_per_s": 900.0,
             "ingest_errors": 0},
            {"case": "worker start", "ready_s": 30.0, "peak_rss_mb": 3000.0},
            {"case": "ingest", "error": "boom"}]
    for r in rows:
        L.judge(r)
    assert [r.get("pass") for r in rows] == [True, False, None, True, False, True, None]


class _Stub(BaseHTTPRequestHandler):
    """POST /events: 200 with what was stored, except the first try of a body flagged "retry" (422, unknown account)."""
    seen: list = []
    refused: set = set()

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        tag = body["accounts"][0]["account_id"]
        if tag.startswith("retry") and tag not in self.refused:
            self.refused.add(tag)
            self._send(422, {"error": "unknown account 'x' (send the account first, or in the same batch)"})
            return
        self.seen.append(tag)
        self._send(200, {"stored": {k: len(v) for k, v in body.items()}, "already_known": {}})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    _Stub.seen, _Stub.refused = [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events"
    server.shutdown()


def _bodies(names: list[str]) -> list[bytes]:
    return [json.dumps({"accounts": [{"account_id": n}, {"account_id": n + "b"}]}).encode() for n in names]


def test_sender_sends_every_body_once_retrying_an_unknown_account(stub):
    names = ["a", "retry1", "b", "c"]
    out = L.send(stub, _bodies(names), {}, 2, 0.0, threading.Event())
    assert sorted(_Stub.seen) == sorted(names)
    assert out["events"] == 8 and out["batches"] == 4 and out["errors"] == 0 and out["retries"] == 1
    assert out["stored"] == {"accounts": 8} and out["ran_out"] and out["p99_ms"] is not None


def test_paced_sender_keeps_to_its_interval_and_stops_when_told(stub):
    stop = threading.Event()
    timer = threading.Timer(0.33, stop.set)
    timer.start()
    out = L.send(stub, _bodies([f"p{i}" for i in range(50)]), {}, 1, 0.1, stop)
    timer.cancel()
    assert 3 <= out["batches"] <= 5 and not out["ran_out"]  # due at 0, 0.1, 0.2, 0.3 s
    assert _Stub.seen == [f"p{i}" for i in range(out["batches"])]  # in order


@pytest.mark.slow
def test_live_suite_runs_end_to_end_tiny_on_sqlite(tmp_path):
    rows = L.run(BenchConfig.make(tiny=True, work_dir=tmp_path, postgres_url=None))
    errors = [(r["case"], r["error"]) for r in rows if r.get("error")]
    assert not errors, errors
    cases = {r["case"]: r for r in rows}
    assert set(cases) == {"ingest", "single_event", "single_event accounts only", "single_event order_updates only",
                          "freshness", "score baseline (no ingestion)", "score while ingesting", "simulate at scale",
                          "import at scale", "history read (one process)", "worker start"}
    assert all(r["store"] in ("sqlite", "-") for r in rows) and not any("pass" in r for r in rows)  # tiny: no targets
    ingest = cases["ingest"]
    assert ingest["stored_once"] and ingest["errors"] == 0 and ingest["events"] > 1000, ingest["store_check"]
    assert ingest["events_per_s"] > 0 and ingest["server_cpu_ms_per_request"] > 0 and ingest["already_known"] == 0
    for case in ("single_event", "single_event accounts only", "single_event order_updates only"):
        r = cases[case]
        assert r["errors"] == 0 and r["new_rows_stored"] == r["distinct_bodies_sent"] > 0, r
    fresh = cases["freshness"]
    assert fresh["rounds"] == L.FRESH_ROUNDS_TINY and fresh["errors"] == 0 and fresh["lag_p50_ms"] > 0
    assert fresh["visible_share"] == 1.0  # read-your-writes across the two workers
    loaded = cases["score while ingesting"]
    assert loaded["errors"] == 0 and loaded["ingest_errors"] == 0 and loaded["ingest_events"] > 0
    assert loaded["baseline_p99_ms"] == cases["score baseline (no ingestion)"]["p99_ms"]
    start = cases["worker start"]
    assert start["ready_s"] > start["live_s"] > 0 and start["peak_rss_mb"] > 0 and start["first_score_status"] == 200
    assert cases["history read (one process)"]["history_read_s"] > 0
    for r in rows:
        assert r.get("load_avg_1m") is not None, r["case"]
    # every process it started is gone
    mine = str(tmp_path).encode()
    left = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mine in (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes():
                left.append(proc.name)
        except OSError:
            continue
    assert not left, f"processes still running: {left}"
