"""Serving the routes marked `direct` (serving.api.routing.direct) straight from an ASGI middleware.

Measured side by side at 8 clients on one worker (docs/benchmarks.md, 2026-12-03 "direct routes"): as an
ordinary FastAPI route behind BentoML's router and the mount, a one-report /score cost 3.3-4.1 ms of server CPU
against 2.5-2.9 ms in the raw ASGI layer it replaced; as a direct route 2.2-2.8 ms against 1.7-2.6 ms (mean +0.2
ms). So the hot routes skip that stack: this middleware sits inside
BentoML's own (metrics, tracing, access log, timeout, concurrency limit) and inside authentication, finds the
route by method and path in the routers' own tables, calls its endpoint with the service, and maps what it raises
through serving.api.errors exactly as the app would (anything unexpected: a logged 500). Any other method on the path goes on to the app (405).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from serving.api.errors import internal_error, response_for

Endpoint = Callable[[Request, Any], Awaitable[Response]]


def direct_routes(routers: Sequence[APIRouter]) -> dict[tuple[str, str], Endpoint]:
    """(method, path) -> endpoint of every route marked direct (the app includes the routers without prefixes)."""
    return {(method, route.path): route.endpoint for router in routers for route in router.routes
            if isinstance(route, APIRoute) and getattr(route.endpoint, "direct", False) for method in route.methods}


def _bentoml_service() -> Any:
    import bentoml

    return bentoml.get_current_service()


class DirectRoutes:
    """ASGI middleware answering the direct routes of `routers`; everything else goes on to `app`."""

    def __init__(self, app, routers: Sequence[APIRouter], service: Callable[[], Any] = _bentoml_service):
        self.app, self._routes, self._service = app, direct_routes(routers), service
        if not self._routes:
            raise ValueError("no route is marked direct: nothing for DirectRoutes to serve")

    async def __call__(self, scope, receive, send):
        endpoint = self._routes.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if endpoint is None:
            return await self.app(scope, receive, send)
        try:
            response = await endpoint(Request(scope, receive), self._service())
        except Exception as exc:  # a bug too is answered at once (500, logged), never left to the server
            response = response_for(exc) or internal_error(exc, scope["method"], scope["path"])
        await response(scope, receive, send)
