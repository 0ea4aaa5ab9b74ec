"""Docket's BentoML service: a thin HTTP face over the scorer, the queue and the ledger.

Opening the store, the ledger and the queue is quick and happens in __init__.
Reading the data source (account history) and loading the champion models run
in a background thread: /livez answers at once, /readyz says 503 until models
are loaded, intake already works once history is there (rules-only priority),
and a sweep rescores rules-scored reports as soon as models arrive. If no
champion exists yet, loading is retried, so a first training makes a waiting
service ready without a restart. Every route but /livez, /readyz and /metrics
needs an API key (serving/auth.py).
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import bentoml

with bentoml.importing():
    from features import settings as S
    from features.build import History
    from features.io import load_tables
    from serving import penalty, queue_routes  # noqa: F401  (registers the queue routes)
    from serving.auth import AuthMiddleware, Keys
    from serving.ledger import Ledger
    from serving.ledger_routes import app as http_app
    from serving.monitors import MonitorConfig, run_monitors
    from serving.penalty_request import parse_penalty_request
    from serving.queue import Queue
    from serving.queue_policy import load_queue_policy
    from serving.requests import RequestError
    from serving.runtime import Runtime, load_scorer
    from serving.store import make_engine, migrate
    from serving.triage import Triage

log = logging.getLogger("docket.service")
RETRY_SECONDS = 5.0


@bentoml.service(name="docket", traffic={"timeout": 60})
@bentoml.mount_asgi_app(http_app, path="/")
class Docket:
    def __init__(self) -> None:
        self.settings = S.Settings.from_env()
        engine = make_engine(self.settings.database_url)
        migrate(engine)
        qp = load_queue_policy()
        self.ledger = Ledger(engine, penalty.load_policy())
        self.queue = Queue(engine, qp, self.ledger)
        self.triage = Triage(self.queue, qp, self.settings.max_batch)
        self.history: History | None = None
        self.runtime: Runtime | None = None
        self.load_error: str | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._load, name="docket-load", daemon=True).start()
        threading.Thread(target=self._sweep, name="docket-sweep", daemon=True).start()

    def _load(self) -> None:
        while not self._stop.is_set():
            try:
                if self.history is None:
                    self.history = History.from_tables(load_tables(self.settings.data_dir, require=["accounts"]))
                self.runtime = Runtime(self.settings, self.history, load_scorer(self.settings))
                self.load_error = None
                log.info("Docket ready: models %s", self.runtime.scorer.model_versions)
                return
            except Exception as err:  # keep retrying; the reason is in the log and in 503 bodies
                self.load_error = f"{type(err).__name__}: {err}"
                log.warning("Docket not ready (%s); retrying in %.0fs", self.load_error, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)

    def _sweep(self) -> None:
        """Rescore reports the rules scored while the models were away; run the monitors on schedule."""
        every = self.triage.qp.monitor_every_minutes * 60
        last_monitor = 0.0
        while not self._stop.wait(self.triage.qp.sweep_seconds):
            if self.runtime is None:
                continue
            try:
                n = self.triage.rescore_pending(self.runtime.history, self.runtime.scorer, datetime.now(UTC))
                if n:
                    log.info("rescored %d reports with the models", n)
                if every and time.monotonic() - last_monitor >= every:
                    last_monitor = time.monotonic()
                    self._monitor()
            except Exception:
                log.exception("sweep failed")

    def _monitor(self) -> None:
        """Transaction monitoring and fulfilment rules over the data source, fed through intake."""
        qp = self.triage.qp
        config = MonitorConfig.from_dict(qp.monitors)
        now = datetime.now(UTC)
        found = run_monitors(load_tables(self.settings.data_dir), self.runtime.history, self.runtime.scorer, now, config)
        if not found:
            return
        result = self.triage.intake(found, self.runtime.history, self.runtime.scorer, actor="system:monitor", now=now)
        log.info("monitors: %d cases found, %d new", len(found), len(result["accepted"]))

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self._stop.set()

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    @staticmethod
    def _invalid(ctx: bentoml.Context, err: RequestError) -> dict:
        ctx.response.status_code = 422
        return {"error": "invalid request", "detail": [e.as_dict() for e in err.errors]}

    def _answer(self, ctx: bentoml.Context, work: Callable[[Runtime], Any]) -> Any:
        """Run `work` on the loaded runtime; the one place scoring failures become HTTP statuses.

        BentoML's own exception rendering cannot carry a per-field list, so the
        status is set on the context and the error body returned directly.
        """
        if self.runtime is None:
            ctx.response.status_code = 503
            return {"error": f"models are not loaded yet ({self.load_error or 'loading'})"}
        try:
            return work(self.runtime)
        except RequestError as err:
            return self._invalid(ctx, err)

    @bentoml.api(route="/score")
    def score(self, ctx: bentoml.Context, reports: Any = None) -> Any:
        """Score a batch of reports: validity, severity, fraud risk, priority and reasons, in request order."""
        return self._answer(ctx, lambda rt: rt.score(reports))

    @bentoml.api(route="/rank")
    def rank(self, ctx: bentoml.Context, reports: Any = None) -> Any:
        """The same results ordered by priority, highest first; ties by created_at, then report_id."""
        return self._answer(ctx, lambda rt: rt.rank(rt.score(reports)))

    @bentoml.api(route="/penalty")
    def penalty(self, ctx: bentoml.Context, as_of: Any = None, account: Any = None, violation: Any = None,
                history: Any = None) -> Any:
        """What the penalty mapper decides for this violation given this record; changes nothing."""
        try:
            when, acc, vio, past = parse_penalty_request(as_of, account, violation, history)
        except RequestError as err:
            return self._invalid(ctx, err)
        return penalty.decide(when, acc, vio, past, self.ledger.policy).to_dict()


Docket.add_asgi_middleware(AuthMiddleware, keys_factory=lambda: Keys(make_engine(S.Settings.from_env().database_url)))
