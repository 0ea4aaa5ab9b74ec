"""POST /score and POST /rank, answered at the ASGI level rather than as BentoML API methods.

A one-report /score costs a few milliseconds of scoring, and BentoML's API
layer (request context, routing, IO model validation, serde, response
rendering) cost about as much again per request: profiled at 8 concurrent
clients, it was the larger half of each worker's event-loop time. This
middleware sits inside BentoML's own (metrics, tracing, access log, timeout,
concurrency limit) and after authentication, so those still apply; it only
skips the per-request machinery the two routes do not need. The service's
`scored` does the work; this module only speaks HTTP.
"""
from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from serving.asgi_json import BodyTooLarge, read_body, send_json
from serving.requests import FieldError, RequestError
from training.scoring import rank_order

MAX_BODY_BYTES = 64 * 1024 * 1024
ROUTES = ("/score", "/rank")

# The service's scoring: a request's reports -> (HTTP status, body), results in request order.
Scored = Callable[[Any], Awaitable[tuple[int, Any]]]


def _bentoml_service() -> Scored:
    import bentoml

    return bentoml.get_current_service().scored


class ScoreRoutes:
    """ASGI middleware answering POST /score and /rank; every other request goes on to the app."""

    def __init__(self, app, scored: Callable[[], Scored] = _bentoml_service):
        self.app, self._scored = app, scored

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in ROUTES:
            return await self.app(scope, receive, send)
        if scope["method"] != "POST":
            return await send_json(send, 405, {"error": f"{scope['path']} takes POST, not {scope['method']}"})
        status, body = await answer(scope["path"], receive, self._scored())
        await send_json(send, status, body)


async def answer(path: str, receive, scored: Scored) -> tuple[int, Any]:
    """(status, body) for one request: 400 for a body that is not JSON, 413 for one too large, 422 naming the
    field for one that is not {"reports": [...]}, else what the service says."""
    try:
        payload = json.loads(await read_body(receive, MAX_BODY_BYTES))
    except BodyTooLarge as err:
        return 413, {"error": str(err)}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return 400, {"error": f"the request body is not JSON ({err})"}
    if not isinstance(payload, dict):
        return 422, RequestError([FieldError(
            "body", f'expected an object {{"reports": [...]}}, got {type(payload).__name__}')]).body()
    unknown = sorted(set(payload) - {"reports"})
    if unknown:
        return 422, RequestError([FieldError(name, "unknown field (allowed: reports)") for name in unknown]).body()
    status, body = await scored(payload.get("reports"))
    if status == 200 and path == "/rank":
        body = rank_order(body)
    return status, body
