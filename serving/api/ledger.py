"""Enforcement routes: what the penalty mapper would decide (POST /penalty, changes nothing), and the ledger
(violations recorded, appeals, remedial steps, account health, the audit trail).

FastAPI because the ledger is addressed by path (`/accounts/{id}/health`). Bad fields are a RequestError (422),
unknown ids a NotFoundError (404): serving.api.errors turns them into responses.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from features.contract import ID_MAX
from policy.penalty import APPEALS, decide
from serving.api import paging
from serving.api.penalty_bodies import PENALTY_FIELDS, _Fields, parse_account, parse_penalty_request, parse_violation
from serving.api.routing import OBJECT_BODY_BYTES, actor_of, json_body, json_payload, now, service
from serving.input_checks import FieldError, RequestError
from serving.market.timeline import LIMIT, account_timeline

router = APIRouter()
MAX_MODELS = 16  # model name -> version pairs a recorded violation may cite


def ledger(svc=Depends(service)):
    return svc.ledger


def _body(body: Any) -> tuple[_Fields, list[FieldError]]:
    errors: list[FieldError] = []
    return _Fields(body if body is not None else {}, "", errors), errors


@router.post("/violations")
def record_violation(request: Request, body: Any = Depends(json_payload()), ledger=Depends(ledger)) -> JSONResponse:
    """Record a confirmed violation: runs the mapper on the stored record; idempotent by violation_id."""
    f, errors = _body(body)
    violation_id, actor = f.text("violation_id"), actor_of(request, f.text("actor", required=False))
    stated = f.time("as_of", required=False)
    as_of = stated or now()
    account = parse_account(f.obj.get("account"), errors)
    violation = parse_violation(f.obj.get("violation"), as_of, errors)
    source = f.text("source_report_id", required=False)
    versions = f.obj.get("model_versions")
    if versions is not None and not (isinstance(versions, dict) and len(versions) <= MAX_MODELS and all(
            isinstance(v, str) and len(k) <= ID_MAX and len(v) <= ID_MAX for k, v in versions.items())):
        errors.append(FieldError("model_versions", f"expected an object of at most {MAX_MODELS} model names -> "
                                                   f"version strings, each at most {ID_MAX} characters"))
    if errors:
        raise RequestError(errors)
    recorded = ledger.record_violation(violation_id, account, violation, actor=actor, as_of=as_of,
                                       source_report_id=source, model_versions=versions,
                                       as_of_stated=stated is not None)
    return JSONResponse({"violation_id": violation_id, "created": recorded.created,
                         "decision": recorded.decision.to_dict()}, status_code=201 if recorded.created else 200)


@router.post("/violations/{violation_id}/appeal")
def appeal(violation_id: str, request: Request, body: Any = Depends(json_payload()), ledger=Depends(ledger)) -> dict:
    """Record the violation's one appeal; an overturned violation stops counting and its penalties lift. A second
    appeal is a 409 naming the first; the same appeal sent again answers 200 and records nothing."""
    f, errors = _body(body)
    outcome, actor, why = f.choice("outcome", APPEALS), actor_of(request, f.text("actor", required=False)), f.text("why")
    stated = f.time("at", required=False)
    if errors:
        raise RequestError(errors)
    return ledger.appeal(violation_id, outcome, actor=actor, why=why, at=stated or now(), at_stated=stated is not None)


@router.post("/violations/{violation_id}/remedial")
def remedial(violation_id: str, request: Request, body: Any = Depends(json_payload()), ledger=Depends(ledger)) -> dict:
    """Record a passed remedial step (shipping-policy quiz); lowers a seller's logistics sentence."""
    f, errors = _body(body)
    completed, actor, why = f.time("completed_at"), actor_of(request, f.text("actor", required=False)), f.text("why")
    if errors:
        raise RequestError(errors)
    return ledger.complete_remedial(violation_id, completed_at=completed, actor=actor, why=why)


@router.get("/accounts/{account_id}/health")
def health(account_id: str, as_of: str | None = None, ledger=Depends(ledger)) -> dict:
    """Health state, counting violations, active penalties with end times, and the full history."""
    errors: list[FieldError] = []
    when = _Fields({"as_of": as_of}, "", errors).time("as_of") if as_of else now()
    if errors:
        raise RequestError(errors)
    return ledger.health(account_id, when)


@router.get("/accounts/{account_id}/timeline")
def timeline(account_id: str, limit: int = Query(LIMIT, ge=1, le=500), svc=Depends(service)) -> dict:
    """The account's reports, orders with their later facts, violations and penalties, newest first."""
    return account_timeline(svc.engine, svc.ledger, account_id, now(), limit)


AUDIT_LIMIT, AUDIT_MAX_LIMIT = 1000, 5000  # events per page of GET /audit: by default, at most


@router.get("/audit")
def audit(entity_id: str | None = None, limit: int = Query(AUDIT_LIMIT, ge=1, le=AUDIT_MAX_LIMIT),
          cursor: str | None = None, ledger=Depends(ledger)) -> JSONResponse:
    """Append-only audit events, oldest first (optionally for one entity), a page of `limit`; the next page
    after the `Next-Cursor` header's cursor (the last event id seen: the trail only grows, ids only increase).
    All 10,964 events of a busy day in one answer were 10 MB and 1.1-1.7 s (issue 15, defect 7)."""
    after = paging.decode(cursor, "audit").get("after") if cursor is not None else None
    if after is not None and not isinstance(after, int):
        raise RequestError([FieldError("cursor", "not a cursor this route gave out")])
    events = ledger.audit_events(entity_id, after=after, limit=limit + 1)  # one more says whether more follow
    more = len(events) > limit
    events = events[:limit]
    return paging.paged(events, paging.encode("audit", {"after": events[-1]["id"]}) if more else None)


@router.post("/penalty")
async def penalty(request: Request, svc=Depends(service)) -> dict:
    """What the penalty mapper decides for this violation given this record; changes nothing."""
    body = await json_body(request, OBJECT_BODY_BYTES)
    if not isinstance(body, dict):
        raise RequestError([FieldError("body", f"expected an object, got {type(body).__name__}")])
    unknown = sorted(set(body) - set(PENALTY_FIELDS))
    if unknown:
        raise RequestError([FieldError(name, f"unknown field (allowed: {', '.join(PENALTY_FIELDS)})")
                            for name in unknown])
    when, account, violation, past = parse_penalty_request(*(body.get(k) for k in PENALTY_FIELDS))
    return decide(when, account, violation, past, svc.ledger.policy).to_dict()
