"""Docket's BentoML service: a thin HTTP face over the scorer, the queue, the ledger and the event store.

Opening the store, the ledger and the queue is quick and happens in __init__.
Reading the history from the store (serving.market.live_feed; a store holding no marketplace
data yet is first filled from DOCKET_DATA_DIR, as `docket import` would) and loading
the champion models run in a background thread: /livez answers at once, /readyz says
503 until models are loaded, intake already works once history is there (rules-only
priority), and a sweep rescores rules-scored reports as soon as models arrive. If no
champion exists yet, loading is retried, so a first training makes a waiting
service ready without a restart. Every route but /livez, /readyz and /metrics
needs an API key (serving/api/auth.py). The history then follows the store: every event
committed by any worker is in the next scoring pass of every worker.

The same thread then follows the champion aliases: every DOCKET_RELOAD_SECONDS
(0: never) it reads which versions they point at, and when they moved it loads
the new pair and swaps it in; POST /admin/reload does the same at once. A
reload that fails keeps the old models serving. Each worker process reloads on
its own: with more than one worker, the endpoint reloads the one that answered
and the poll brings the others along.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import bentoml

with bentoml.importing():
    from config import settings as S
    from features.history import History
    from features.io import load_tables
    from policy.file import load_policy_file
    from serving.api.app import ROUTERS, make_app
    from features.vocabulary import FAMILIES
    from serving.api import metrics
    from serving.api.auth import AuthMiddleware, Keys
    from serving.api.direct import DirectRoutes
    from serving.api.rate_limits import RateLimiter
    from serving.api.request_log import RequestLog
    from serving.api.errors import NotReady
    from serving.enforcement.ledger import Ledger
    from serving.input_checks import records_frame
    from serving.market.event_store import Market
    from serving.market.events import ORDERS_IN
    from serving.market.live_feed import LiveFeed
    from serving.queue.backlog import backlog
    from serving.queue.cases import Queue, case_id_for
    from serving.queue.intake import Triage
    from serving.queue.monitors import MonitorConfig, fulfillment_reports, run_monitors, transaction_reports
    from serving.scoring.batching import Coalescer
    from serving.scoring.runtime import Reload, Runtime, load_scorer, reload
    from serving.store.db import append_audit, make_engine, migrate, writing

log = logging.getLogger("docket.service")
RETRY_SECONDS = 5.0
# The /metrics backlog gauges: a scrape every 15-30 s is usual, and over 100,000 open cases the read is 62 ms of a
# core (SQLite), so it is read every 15 s rather than on every sweep.
BACKLOG_SECONDS = 15.0


# BentoML collects no traces unless tracing.sample_rate is set, yet its tracing middleware still builds four spans
# per request (the request, its body, two sends): profiled at 8 clients, 15% of a worker's event-loop time on
# /score. Unless DOCKET_TRACE_SCORING is set, the two scoring routes are left out of tracing (their access-log
# lines then carry no trace id); every other route is traced as BentoML configures.
_SETTINGS = S.Settings.from_env()
HTTP_APP = make_app()
_UNTRACED = [] if _SETTINGS.trace_scoring else ["/score$", "/rank$"]  # regexes searched in the URL


# BentoML's request metrics label every request with its raw path (a series per case id); Docket serves /metrics
# itself with route templates (serving/api/metrics.py).
@bentoml.service(name="docket", traffic={"timeout": 60}, workers=_SETTINGS.workers, metrics={"enabled": False},
                 tracing={"excluded_urls": _UNTRACED} if _UNTRACED else {})
@bentoml.mount_asgi_app(HTTP_APP, path="/")
class Docket:
    def __init__(self) -> None:
        self.settings = _SETTINGS
        self.engine = engine = make_engine(self.settings.database_url)
        migrate(engine)
        policy = load_policy_file(self.settings.policy_file)
        qp = policy.queue
        self.ledger = Ledger(engine, policy.penalty)
        self.queue = Queue(engine, qp, self.ledger)
        self.triage = Triage(self.queue, qp, self.settings.max_batch)
        self.market = Market(engine, self.ledger.policy)
        self.feed: LiveFeed | None = None
        self.runtime: Runtime | None = None
        self.load_error: str | None = None
        self.reload_error: str | None = None
        self._reloading = threading.Lock()
        self._stop = threading.Event()
        self.scoring: Coalescer[tuple[Runtime, dict], dict] = Coalescer(
            self._score_pass, self.settings.score_pass_rows, name="docket-scoring")
        threading.Thread(target=self._follow_models, name="docket-models", daemon=True).start()
        threading.Thread(target=self._sweep, name="docket-sweep", daemon=True).start()

    def _follow_models(self) -> None:
        """Load the champion models, retrying until there are some; then reload whenever the aliases move."""
        every = self.settings.reload_seconds
        while not self._stop.is_set():
            if self.runtime is None:
                self._load()
            elif every > 0:
                try:
                    self.reload_models(actor="system:reload")
                except Exception:  # logged by reload_models; the old models keep serving
                    pass
            else:
                return
            self._stop.wait(RETRY_SECONDS if self.runtime is None else max(every, 0))

    @property
    def history(self) -> History | None:
        """The history as it is now (None until it has been read from the store)."""
        return self.feed.current() if self.feed is not None else None

    def _load(self) -> None:
        try:
            if self.feed is None:
                seed_store(self.market, self.triage, self.settings.data_dir)
                self.feed = LiveFeed(self.market)
            self.runtime = Runtime(self.settings, self.feed.current, load_scorer(self.settings), latest=self.feed.latest)
            self.load_error = None
            metrics.set_models(self.runtime.scorer.model_versions, None)
            log.info("Docket ready: models %s", self.runtime.scorer.model_versions)
        except Exception as err:  # keep retrying; the reason is in the log and in 503 bodies
            self.load_error = f"{type(err).__name__}: {err}"
            log.warning("Docket not ready (%s); retrying in %.0fs", self.load_error, RETRY_SECONDS)

    def reload_models(self, actor: str) -> Reload:
        """Serve the models the champion aliases point at now, both loaded before one swap.

        Raises (ModelNotFound when an alias points at nothing, or why loading failed)
        and keeps the old models serving. A change is written to the audit trail
        before it takes effect, so no unrecorded model ever serves.
        """
        with self._reloading:
            current = self.runtime
            if current is None:
                raise RuntimeError("models are not loaded yet")
            try:
                done = reload(current)
                if done.changed:
                    with writing(self.engine) as conn:
                        append_audit(conn, at=done.runtime.loaded_at, actor=actor, action="models.reloaded",
                                     entity="models", entity_id=S.CHAMPION, before=done.previous,
                                     after=done.runtime.scorer.model_versions, why=f"the {S.CHAMPION} aliases moved")
            except Exception as err:
                reason = f"{type(err).__name__}: {err}"
                if reason != self.reload_error:  # a poll meeting the same failure logs it once
                    log.warning("reload failed, still serving %s: %s", current.scorer.model_versions, reason)
                self.reload_error = reason
                raise
            self.reload_error = None
            if done.changed:
                self.runtime = done.runtime  # one assignment: requests in flight finish with the old runtime
                metrics.set_models(done.runtime.scorer.model_versions, done.previous)
                log.info("reloaded models %s (was %s) for %s", done.runtime.scorer.model_versions, done.previous,
                         actor)
            return done

    def models(self) -> dict | None:
        """The versions serving, when they were loaded, and how the service follows the champion; None before loading."""
        runtime = self.runtime
        if runtime is None:
            return None
        return {"model_versions": runtime.scorer.model_versions, "loaded_at": runtime.loaded_at.isoformat(),
                "alias": S.CHAMPION, "reload_seconds": self.settings.reload_seconds,
                "last_reload_error": self.reload_error}

    def _sweep(self) -> None:
        """Rescore reports the rules scored while the models were away; run the monitors on schedule; read the
        queue's backlog for /metrics."""
        every = self.triage.qp.monitor_every_minutes * 60
        last_monitor, last_backlog = 0.0, -BACKLOG_SECONDS
        while not self._stop.wait(self.triage.qp.sweep_seconds):
            if time.monotonic() - last_backlog >= BACKLOG_SECONDS:
                last_backlog = time.monotonic()
                try:
                    metrics.set_backlog(backlog(self.engine, datetime.now(UTC)), FAMILIES)
                except Exception:
                    log.exception("reading the backlog failed")
            runtime = self.runtime
            if runtime is None:
                continue
            try:
                n = self.triage.rescore_pending(runtime.history, runtime.scorer, datetime.now(UTC))
                if n:
                    log.info("rescored %d reports with the models", n)
                n = self.triage.rescore_arrived(runtime.history, runtime.scorer, datetime.now(UTC))
                if n:
                    log.info("rescored %d reports whose accounts or orders arrived", n)
                if every and time.monotonic() - last_monitor >= every:
                    last_monitor = time.monotonic()
                    self._monitor(runtime)
            except Exception:
                log.exception("sweep failed")

    def _monitor(self, runtime: Runtime) -> None:
        """Transaction monitoring and fulfilment rules over the data source, fed through intake."""
        qp = self.triage.qp
        config = MonitorConfig.from_dict(qp.monitors)
        now = datetime.now(UTC)
        found = run_monitors(self.market.tables()[1], runtime.history, runtime.scorer, now, config)
        if not found:
            return
        result = self.triage.intake(found, runtime.history, runtime.scorer, actor="system:monitor", now=now)
        log.info("monitors: %d cases found, %d new", len(found), len(result["accepted"]))

    def watch_orders(self, orders: list[dict], now: datetime) -> list[str]:
        """Transaction monitoring as orders arrive: each new order scored by the order fraud model at its own
        time; those above monitors.fraud_threshold open an automated_detection case. Returns the new cases."""
        runtime = self.runtime
        if not orders or runtime is None:
            return []
        config = MonitorConfig.from_dict(self.triage.qp.monitors)
        history = runtime.history
        found = transaction_reports(records_frame(orders, ORDERS_IN), history, runtime.scorer.fraud.bundle.order,
                                    None, config)
        return self._open_cases(found, history, runtime, "system:monitor", now, source="transactions")

    def watch_fulfilment(self, rows: dict[str, list[dict]], now: datetime) -> list[str]:
        """The fulfilment rules as a seller's shipping facts arrive: the sellers of the batch's orders and order
        updates judged over their orders up to the batch's latest event. Returns the cases opened."""
        runtime, feed = self.runtime, self.feed
        if runtime is None or feed is None or not (rows.get("orders") or rows.get("order_updates")):
            return []
        history = runtime.history  # current: includes this batch, so its orders are found below
        named = [r["order_id"] for r in rows.get("order_updates", [])]
        sellers = sorted({r["seller_id"] for r in rows.get("orders", [])} | (feed.sellers_of(named) if named else set()))
        times = [r["at"] for r in rows.get("order_updates", [])] + [r["created_at"] for r in rows.get("orders", [])]
        as_of = min(max(times).to_pydatetime() + timedelta(seconds=1), now)
        config = MonitorConfig.from_dict(self.triage.qp.monitors)
        found = fulfillment_reports(feed.seller_orders(sellers), history, as_of, config)
        # A rule that keeps firing day after day is one case until an investigator closes it.
        still_open = self.queue.open_rule_cases(sorted({r["subject_id"] for r in found}))
        found = [r for r in found if (r["subject_id"], r["evidence"]["rule"]) not in still_open]
        return self._open_cases(found, history, runtime, "system:fulfilment", now, source="fulfilment")

    def _open_cases(self, found: list[dict], history: History, runtime: Runtime, actor: str,
                    now: datetime, source: str) -> list[str]:
        """Feed what a monitor found through intake; returns the cases it opened."""
        if not found:
            return []
        result = metrics.counted_intake(self.triage.intake(found, history, runtime.scorer, actor=actor, now=now),
                                        source)
        return [case_id_for(report_id) for report_id in result["accepted"]]

    @staticmethod
    def _score_pass(group: int, items: list[tuple[Runtime, dict]]) -> list[dict]:
        """One pass of the scoring thread: checked reports of one or more requests, all on the same runtime."""
        return items[0][0].score_checked([row for _, row in items])

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()
        self.scoring.close()

    def __is_ready__(self) -> bool:
        return self.runtime is not None


    async def scored(self, reports: Any) -> list[dict]:
        """A request's reports scored in request order (validity, severity, fraud risk, priority, reasons), for
        POST /score and /rank (serving/api/scoring.py); NotReady while models load, RequestError naming bad fields.

        Validation runs here, per request, so a 422 names this request's fields; the valid reports then join
        whatever other requests are waiting for the scoring thread (serving/scoring/batching.py). The runtime is
        taken once, so a reload mid-request cannot mix two model versions in one answer.
        """
        runtime = self.runtime
        if runtime is None:
            raise NotReady("models are", self.load_error)
        rows = runtime.check(reports)
        return await self.scoring.submit_async(id(runtime), [(runtime, row) for row in rows])



def seed_store(market: Market, triage: Triage, data_dir) -> None:
    """A store holding no marketplace data yet is filled from the data folder, through `docket import`'s path;
    one process at a time (the others wait, then find it filled)."""
    from pathlib import Path

    from features.io import table_files
    from serving.store.db import exclusive

    if not market.is_empty() or not Path(data_dir).is_dir() or not table_files(Path(data_dir)):
        return
    with exclusive(market.engine, "seed"):
        if not market.is_empty():
            return
        tables = load_tables(data_dir, require=["accounts"])
        counts = market.import_tables(tables, actor="system:seed", now=datetime.now(UTC), triage=triage,
                                      history_factory=lambda: History.from_tables(market.tables()[1]))
        log.info("store filled from %s: %s", data_dir, counts)


# Outermost first: the request log (request id, JSON line, request counter) sees every answer, 401s and 429s too.
Docket.add_asgi_middleware(RequestLog, routers=ROUTERS)
Docket.add_asgi_middleware(AuthMiddleware, keys_factory=lambda: Keys(make_engine(_SETTINGS.database_url)),
                           limiter_factory=lambda: RateLimiter(_SETTINGS.rate_limit_per_second,
                                                               _SETTINGS.rate_limit_burst))
Docket.add_asgi_middleware(DirectRoutes, routers=ROUTERS)  # after (inside) authentication
