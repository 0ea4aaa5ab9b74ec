"""HTTP routes of the enforcement ledger (FastAPI, mounted on the BentoML service).

FastAPI because the ledger is addressed by path (`/accounts/{id}/health`),
which BentoML's own API decorator does not express. Every failure becomes a
status here and only here: bad fields 422 (same body shape as /score), unknown
ids 404.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bentoml
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.ledger import LedgerError, NotFoundError
from serving.penalty import APPEALS
from serving.penalty_request import _Fields, parse_account, parse_violation
from serving.requests import FieldError, RequestError

app = FastAPI(title="Docket ledger", docs_url=None, redoc_url=None, openapi_url=None)


def _invalid(errors: list[FieldError]) -> JSONResponse:
    return JSONResponse(RequestError(errors).body(), status_code=422)


@app.exception_handler(RequestValidationError)
async def _shape_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    return _invalid([FieldError(".".join(str(p) for p in e["loc"][1:]) or "body", e["msg"]) for e in exc.errors()])


@app.exception_handler(RequestError)
async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
    return _invalid(exc.errors)


@app.exception_handler(LedgerError)
async def _ledger_error(request: Request, exc: LedgerError) -> JSONResponse:
    return _invalid([FieldError("violation", str(exc))])


@app.exception_handler(NotFoundError)
async def _not_found(request: Request, exc: NotFoundError) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=404)


def ledger(service: Any = Depends(bentoml.get_current_service)):
    return service.ledger


def actor_of(request: Request, claimed: str | None = None) -> str:
    """Who is acting: the verified API key, with the person named in the body when one is given."""
    key = getattr(request.state, "actor", None) or "anonymous"
    return f"{key} ({claimed})" if claimed else key


def _now() -> datetime:
    return datetime.now(UTC)


def _body(body: Any) -> tuple[_Fields, list[FieldError]]:
    errors: list[FieldError] = []
    return _Fields(body if body is not None else {}, "", errors), errors


@app.post("/violations")
def record_violation(request: Request, body: Any = Body(None), ledger=Depends(ledger)) -> JSONResponse:
    """Record a confirmed violation: runs the mapper on the stored record; idempotent by violation_id."""
    f, errors = _body(body)
    violation_id, actor = f.text("violation_id"), actor_of(request, f.text("actor", required=False))
    as_of = f.time("as_of", required=False) or _now()
    account = parse_account(f.obj.get("account"), errors)
    violation = parse_violation(f.obj.get("violation"), as_of, errors)
    source = f.text("source_report_id", required=False)
    versions = f.obj.get("model_versions")
    if versions is not None and not (isinstance(versions, dict) and all(isinstance(v, str) for v in versions.values())):
        errors.append(FieldError("model_versions", "expected an object of model name -> version string"))
    if errors:
        raise RequestError(errors)
    recorded = ledger.record_violation(violation_id, account, violation, actor=actor, as_of=as_of,
                                       source_report_id=source, model_versions=versions)
    return JSONResponse({"violation_id": violation_id, "created": recorded.created,
                         "decision": recorded.decision.to_dict()}, status_code=201 if recorded.created else 200)


@app.post("/violations/{violation_id}/appeal")
def appeal(violation_id: str, request: Request, body: Any = Body(None), ledger=Depends(ledger)) -> dict:
    """Record an appeal outcome; an overturned violation stops counting and its penalties lift."""
    f, errors = _body(body)
    outcome, actor, why = f.choice("outcome", APPEALS), actor_of(request, f.text("actor", required=False)), f.text("why")
    at = f.time("at", required=False) or _now()
    if errors:
        raise RequestError(errors)
    return ledger.appeal(violation_id, outcome, actor=actor, why=why, at=at)


@app.post("/violations/{violation_id}/remedial")
def remedial(violation_id: str, request: Request, body: Any = Body(None), ledger=Depends(ledger)) -> dict:
    """Record a passed remedial step (shipping-policy quiz); lowers a seller's logistics sentence."""
    f, errors = _body(body)
    completed, actor, why = f.time("completed_at"), actor_of(request, f.text("actor", required=False)), f.text("why")
    if errors:
        raise RequestError(errors)
    return ledger.complete_remedial(violation_id, completed_at=completed, actor=actor, why=why)


@app.get("/accounts/{account_id}/health")
def health(account_id: str, as_of: str | None = None, ledger=Depends(ledger)) -> dict:
    """Health state, counting violations, active penalties with end times, and the full history."""
    errors: list[FieldError] = []
    when = _Fields({"as_of": as_of}, "", errors).time("as_of") if as_of else _now()
    if errors:
        raise RequestError(errors)
    return ledger.health(account_id, when)


@app.get("/audit")
def audit(entity_id: str | None = None, ledger=Depends(ledger)) -> list[dict]:
    """Append-only audit events, oldest first (optionally for one entity)."""
    return ledger.audit_events(entity_id)
