"""Every failure a route can meet, turned into its HTTP status and body here and only here.

Bodies have two shapes: `{"error": message}`, and for bad fields `{"detail": [{"field", "message"}, ...]}`
(the same for every route). Routes raise; `install` maps what they raise.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.api.asgi import BodyTooLarge
from serving.api.strict_json import BadJson, UnsupportedMedia
from serving.enforcement.ledger import LedgerError, NotFoundError
from serving.input_checks import FieldError, RequestError
from serving.queue.cases import CaseStateError
from serving.store.conflicts import ConflictError

log = logging.getLogger("docket.api")


class NotReady(RuntimeError):
    """Part of the service is still loading (models, or the history read from the store): 503 with the reason."""

    def __init__(self, what: str, reason: str | None):
        super().__init__(f"{what} not loaded yet ({reason or 'loading'})")


def error_body(message: str) -> dict[str, str]:
    return {"error": message}


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({**error_body(message), **extra}, status_code=status)


def _invalid(errors: list[FieldError]) -> JSONResponse:
    """The 422 every route answers bad fields with."""
    return JSONResponse({**error_body("invalid request"), "detail": [e.as_dict() for e in errors]}, status_code=422)


# exception type -> (status, body); the first matching type wins, so subclasses come first
def _shape(exc: RequestValidationError) -> JSONResponse:
    return _invalid([FieldError(".".join(str(p) for p in e["loc"][1:]) or "body", e["msg"]) for e in exc.errors()])


HANDLERS = {
    RequestValidationError: _shape,
    RequestError: lambda exc: _invalid(exc.errors),
    LedgerError: lambda exc: _invalid([FieldError("violation", str(exc))]),
    NotFoundError: lambda exc: error_response(404, str(exc)),
    ConflictError: lambda exc: JSONResponse(exc.body(), status_code=409),
    CaseStateError: lambda exc: error_response(409, str(exc)),
    NotReady: lambda exc: error_response(503, str(exc)),
    BadJson: lambda exc: error_response(400, str(exc), **(
        {"detail": [FieldError(exc.field, str(exc)).as_dict()]} if exc.field else {})),
    UnsupportedMedia: lambda exc: error_response(415, str(exc)),
    BodyTooLarge: lambda exc: error_response(413, str(exc)),
}


def response_for(exc: Exception) -> JSONResponse | None:
    """The response for a failure a route raised, or None if it is not one of the above (a bug: 500)."""
    for kind, respond in HANDLERS.items():
        if isinstance(exc, kind):
            return respond(exc)
    return None


def internal_error(exc: BaseException, method: str, path: str) -> JSONResponse:
    """A failure none of the above expects (a bug): logged with its traceback, answered 500 at once. Never
    re-raised to the server, which without a response would leave the client waiting for BentoML's timeout."""
    log.error("unhandled %s on %s %s", type(exc).__name__, method, path, exc_info=exc)
    return error_response(500, f"internal error ({type(exc).__name__}); it is logged")


def install(app: FastAPI) -> None:
    """Register every mapping above on `app`, and the 500 for everything else."""
    for kind in HANDLERS:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return response_for(exc)

        app.add_exception_handler(kind, handler)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(exc, request.method, request.url.path)

    app.add_exception_handler(Exception, unexpected)
