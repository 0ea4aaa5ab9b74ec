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
    from serving.runtime import Runtime, load_runtime
    from serving.requests import RequestError

log = logging.getLogger("docket.service")
RETRY_SECONDS = 5.0


@bentoml.service(name="docket", traffic={"timeout": 60})
class Docket:
    def __init__(self) -> None:
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
            ctx.response.status_code = 422
            return {"error": "invalid request", "detail": [e.as_dict() for e in err.errors]}

    @bentoml.api(route="/score")
    def score(self, ctx: bentoml.Context, reports: Any = None) -> Any:
        """Score a batch of reports: validity, severity, fraud risk, priority and reasons, in request order."""
        return self._answer(ctx, lambda rt: rt.score(reports))

    @bentoml.api(route="/rank")
    def rank(self, ctx: bentoml.Context, reports: Any = None) -> Any:
        """The same results ordered by priority, highest first; ties by created_at, then report_id."""
        return self._answer(ctx, lambda rt: rt.rank(rt.score(reports)))
