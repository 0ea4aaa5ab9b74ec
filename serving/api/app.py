"""The HTTP face: one FastAPI app holding every route, mounted on the BentoML service (serving.service).

Each domain's routes are functions on its module's router; ROUTERS lists them, and serving.api.errors is the
one place failures become statuses. Authentication wraps the whole app (serving.api.auth, added as ASGI
middleware by the service), so a route never checks a key itself.
"""
from __future__ import annotations

from fastapi import FastAPI

from serving.api import console, errors, events, keys, ledger, metrics, models, queue, scoring

ROUTERS = (scoring.router, queue.router, ledger.router, events.router, models.router, keys.router, metrics.router,
           console.router)


def make_app() -> FastAPI:
    app = FastAPI(title="Docket", docs_url=None, redoc_url=None, openapi_url=None)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
