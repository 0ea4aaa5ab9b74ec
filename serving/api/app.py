"""The HTTP face: one FastAPI app holding every route, mounted on the BentoML service (serving.service).

Each domain's routes are functions on its module's router; ROUTERS lists them, and serving.api.errors is the
one place failures become statuses. Authentication wraps the whole app (serving.api.auth, added as ASGI
middleware by the service), so a route never checks a key itself.

The OpenAPI document is at /openapi.json for any valid key (no role: it describes the API every role calls and
holds no data; without a key it is a 401 like every other route but the health checks). It lists the JSON API,
with each route's request body from serving.api.request_schemas; the console's pages are not in it.
"""
from __future__ import annotations

from fastapi import Depends, FastAPI

from serving.api import console, errors, events, keys, ledger, metrics, models, queue, scoring
from serving.api.request_schemas import add_request_bodies
from serving.api.routing import plain_url

ROUTERS = (scoring.router, queue.router, ledger.router, events.router, models.router, keys.router, metrics.router,
           console.router)
OPENAPI_PATH = "/openapi.json"


def make_app() -> FastAPI:
    app = FastAPI(title="Docket", docs_url=None, redoc_url=None, openapi_url=OPENAPI_PATH,
                  dependencies=[Depends(plain_url)])
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router, include_in_schema=router is not console.router)
    document = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = add_request_bodies(document())
        return app.openapi_schema

    app.openapi = openapi
    return app
