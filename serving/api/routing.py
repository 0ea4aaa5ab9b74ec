"""What every route module uses: its router, the service a route works on, who is calling, the time, the body.

A route is a function on a module's `router` (an APIRouter); serving.api.app includes every router, so adding
an endpoint is adding a function to the router of its domain (`direct` marks the few hot paths). Routes raise (serving.api.errors maps what they
raise to a status); they never build an error response themselves.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import bentoml
from fastapi import Depends, Request

from serving.api.asgi import read_body
from serving.api.errors import NotJson, NotReady

MAX_BODY_BYTES = 64 * 1024 * 1024


def direct(endpoint):
    """Mark a route as a hot path: serving.api.direct answers it without BentoML's router, the mount and FastAPI's
    dependency machinery (0.6-1.2 ms of server CPU per one-report /score here, a quarter to a third of it). The
    route is still declared on its router like any other; a direct endpoint takes (request, svc) and returns a
    Response."""
    endpoint.direct = True
    return endpoint


def service(svc: Any = Depends(bentoml.get_current_service)):
    """The running Docket service (serving.service.Docket), as a route dependency."""
    return svc


def actor_of(request: Request, claimed: str | None = None) -> str:
    """Who is acting: the verified API key, with the person named in the body when one is given."""
    key = getattr(request.state, "actor", None) or "anonymous"
    return f"{key} ({claimed})" if claimed else key


def now() -> datetime:
    return datetime.now(UTC)


async def json_body(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The request body parsed as JSON; NotJson (400) if it is not, BodyTooLarge (413) past `limit` bytes."""
    try:
        return json.loads(await read_body(request.receive, limit))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise NotJson(f"the request body is not JSON ({err})") from err


def runtime_of(svc):
    """The models at work, or NotReady while they load."""
    runtime = svc.runtime
    if runtime is None:
        raise NotReady("models are", svc.load_error)
    return runtime


def history_of(svc):
    """The history read from the store, or NotReady while it loads."""
    history = svc.history
    if history is None:
        raise NotReady("the data source is", svc.load_error)
    return history
