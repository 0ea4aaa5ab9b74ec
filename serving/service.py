"""Docket's BentoML service: a thin HTTP face over the scorer.

Start-up work (reading the data source, indexing history, loading the champion
models from the MLflow registry) runs in a background thread so that /livez
answers at once and /readyz says 503 until scoring can really happen. If no
champion exists yet, loading is retried, so training a first model makes a
waiting service ready without a restart.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import bentoml

with bentoml.importing():
    from features.settings import Settings
    from serving import penalty
    from serving.ledger import Ledger
    from serving.ledger_routes import app as ledger_app
    from serving.store import make_engine, migrate
    from serving.penalty_request import parse_penalty_request
    from serving.runtime import Runtime, load_runtime
    from serving.requests import RequestError

log = logging.getLogger("docket.service")
RETRY_SECONDS = 5.0


@bentoml.service(name="docket", traffic={"timeout": 60})
@bentoml.mount_asgi_app(ledger_app, path="/")
class Docket:
    def __init__(self) -> None:
        # The store and the policy are quick to open and needed even before models load:
        # the ledger and /penalty work while /readyz still says the models are loading.
        settings = Settings.from_env()
        engine = make_engine(settings.database_url)
        migrate(engine)
        self.ledger = Ledger(engine, penalty.load_policy())
        self.runtime: Runtime | None = None
        self.load_error: str | None = None
        self._stop = threading.Event()
        threading.Thread(target=self._load, name="docket-load", daemon=True).start()

    def _load(self) -> None:
        while not self._stop.is_set():
            try:
                self.runtime = load_runtime()
                self.load_error = None
                log.info("Docket ready: models %s", self.runtime.scorer.model_versions)
                return
            except Exception as err:  # keep retrying; the reason is visible in the log and /readyz stays 503
                self.load_error = f"{type(err).__name__}: {err}"
                log.warning("Docket not ready (%s); retrying in %.0fs", self.load_error, RETRY_SECONDS)
                self._stop.wait(RETRY_SECONDS)

    def __is_ready__(self) -> bool:
        return self.runtime is not None

    @staticmethod
    def _invalid(ctx: bentoml.Context, err: RequestError) -> dict:
        ctx.response.status_code = 422
        return {"error": "invalid request", "detail": [e.as_dict() for e in err.errors]}

    def _answer(self, ctx: bentoml.Context, work: Callable[[Runtime], Any]) -> Any:
        """Run `work` on the loaded runtime; the one place request failures become HTTP statuses.

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
