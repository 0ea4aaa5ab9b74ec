"""What every route module uses: its router, the service a route works on, who is calling, the time, the body.

A route is a function on a module's `router` (an APIRouter); serving.api.app includes every router, so adding
an endpoint is adding a function to the router of its domain (`direct` marks the few hot paths). Routes raise (serving.api.errors maps what they
raise to a status); they never build an error response themselves.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bentoml
from fastapi import Depends, Request

from serving.api.asgi import BodyTooLarge, read_body
from serving.api.errors import NotReady
from serving.api.strict_json import check_media_type, parse_json, unstorable
from serving.input_checks import FieldError, RequestError

# Body limits: a batch (/score, /rank, /reports, /events, /predict/fraud) is up to DOCKET_MAX_BATCH records whose
# text is within the data contract's limits; every other body is one object.
BATCH_BODY_BYTES = 64 * 1024 * 1024
OBJECT_BODY_BYTES = 1024 * 1024


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


async def json_body(request: Request, limit: int) -> Any:
    """The request body as JSON, read by the one strict reader (serving.api.strict_json): None when empty;
    UnsupportedMedia (415) for a form, BodyTooLarge (413) past `limit` bytes, BadJson (400) for anything that
    is not strict JSON within the depth and number limits."""
    check_media_type(request.headers.get("content-type"))
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:  # refused before a byte of it is read
        raise BodyTooLarge(f"the request body of {int(declared):,} bytes exceeds this route's limit of {limit:,} bytes")
    return parse_json(await read_body(request.receive, limit))


def plain_url(request: Request) -> None:
    """Every route's path and query parameters as text the store can hold (an app-wide dependency): a NUL
    character or a lone surrogate in one is a 422 naming it, never a DataError from PostgreSQL (a 500)."""
    errors = [FieldError(name, why) for name, value in (*request.path_params.items(), *request.query_params.multi_items())
              if isinstance(value, str) and (why := unstorable(value))]
    if errors:
        raise RequestError(errors)


def json_payload(limit: int = OBJECT_BODY_BYTES):
    """A route dependency giving the body as json_body reads it: every JSON route reads its body this way
    (never FastAPI's `Body`, which has no size, depth or number limit)."""
    async def body(request: Request) -> Any:
        return await json_body(request, limit)

    return body


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
