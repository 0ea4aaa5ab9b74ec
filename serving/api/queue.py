"""HTTP routes of the triage queue: intake, ranking, claims, cases, resolutions and alerts.

The acting identity is the API key the auth middleware verified, so every audit event names who did it.
"""
from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from features import vocabulary as V
from serving.api import metrics, paging
from serving.api.routing import BATCH_BODY_BYTES, actor_of, history_of, json_payload, now, service
from serving.api.penalty_bodies import _Fields
from serving.input_checks import FieldError, RequestError
from serving.queue.cases import RankKey


router = APIRouter()


@router.post("/reports")
def intake(request: Request, body: Any = Depends(json_payload(BATCH_BODY_BYTES)), svc=Depends(service)):
    """Accept reports: each stored exactly once (by report_id) and scored before this answers; a known id with
    other content is a 409 naming the fields (nothing of the batch stored), an exact resend only named."""
    history = history_of(svc)
    if not isinstance(body, dict):
        raise RequestError([FieldError("body", "expected a JSON object {\"reports\": [...]}")])
    runtime = svc.runtime
    return metrics.counted_intake(svc.triage.intake(body.get("reports"), history, runtime.scorer if runtime else None,
                                                    actor=actor_of(request), now=now(), refuse_other_content=True))


QUEUE_LIMIT, QUEUE_MAX_LIMIT = 50, 1000  # cases per page of GET /queue: by default, at most


# One page read at a time per worker. A page is CPU-bound Python (SQLite reads, ranking, building rows) and
# the GIL runs one thread anyway: eight requests at once in one worker's thread pool cost 25 ms of CPU each
# instead of 9 (switching and cache churn), so GET /queue's p99 at 8 clients and 100,000 open cases was
# 334 ms with the threads racing and 113 ms queued behind this lock (docs/benchmarks.md, 2026-12-04).
_PAGE_READS = threading.Lock()


@router.get("/queue")
def ranked_queue(limit: int = Query(QUEUE_LIMIT, ge=1, le=QUEUE_MAX_LIMIT), cursor: str | None = None,
                 family: str | None = None, category: str | None = None, svc=Depends(service)):
    """Open cases in priority order (alerts first), with scores, reasons, deadline and time left; a page of
    `limit`, the next one after the `Next-Cursor` header's cursor (Queue.page says what "after" means)."""
    check_filters(family, category)
    after = _rank_key(paging.decode(cursor, "queue")) if cursor is not None else None
    with _PAGE_READS:
        items, last = svc.queue.page(now(), limit, family, category, after)
    return paging.paged(items, paging.encode("queue", asdict(last)) if last else None)


def _rank_key(position: dict) -> RankKey:
    """The rank key a queue cursor carries (422 naming `cursor` when it is not one)."""
    try:
        key = RankKey(**position)
        ok = (isinstance(key.tier, int) and isinstance(key.case_id, str)
              and all(isinstance(v, (int, float)) for v in (key.effective_priority, key.deadline_s)))
    except TypeError:
        ok = False
    if not ok:
        raise RequestError([FieldError("cursor", "not a cursor this route gave out")])
    return key


def check_filters(family: str | None, category: str | None) -> None:
    """The queue's filters (the API's and the console's): RequestError naming an unknown family or category."""
    errors = []
    if family is not None and family not in V.FAMILIES:
        errors.append(FieldError("family", f"unknown value '{family}' (allowed: {', '.join(V.FAMILIES)})"))
    if category is not None and category not in V.CATEGORIES:
        errors.append(FieldError("category", f"unknown value '{category}'"))
    if errors:
        raise RequestError(errors)


CLAIM_FIELDS = ("case_id",)


@router.post("/queue/claim")
def claim(request: Request, body: Any = Depends(json_payload()), svc=Depends(service)):
    """Hold a case for the caller until it is resolved, released or the claim times out: the one named by
    `{"case_id": ...}`, else the highest-priority open case. A field this route does not know is refused rather
    than ignored, so a misspelt `case_id` never hands out some other case."""
    return {"case": metrics.counted_claim(svc.queue.claim(actor_of(request), now(), case_id=_claim_target(body)))}


def _claim_target(body: Any) -> str | None:
    """The case id a claim names, or None for "the best open case" (no body, or `{}`)."""
    if body is None:
        return None
    if not isinstance(body, dict):
        raise RequestError([FieldError("body", f"expected an object, got {type(body).__name__}")])
    unknown = sorted(set(body) - set(CLAIM_FIELDS))
    if unknown:
        raise RequestError([FieldError(name, f"unknown field (allowed: {', '.join(CLAIM_FIELDS)})")
                            for name in unknown])
    errors: list[FieldError] = []
    case_id = _Fields(body, "", errors).text("case_id", required=False)
    if errors:
        raise RequestError(errors)
    return case_id


@router.post("/cases/{case_id}/release")
def release(case_id: str, request: Request, svc=Depends(service)):
    """Give a claimed case back to the queue; only its holder may, so a case is never taken from someone."""
    return svc.queue.release(case_id, actor_of(request), now())


@router.get("/cases/{case_id}")
def case(case_id: str, svc=Depends(service)):
    """The case with its reports, scores and reasons, the subject's record and the proposed penalty."""
    return svc.queue.case(case_id, now(), role=subject_role(svc, case_id))


def subject_role(svc, case_id: str) -> str:
    """The subject's role from the data source (sellers can receive seller-only actions)."""
    subject = svc.queue.subject_of(case_id)
    history = svc.history
    if history is None:
        return "buyer"
    code = history.account_code(subject)
    return "seller" if code >= 0 and history.is_seller[code] else "buyer"


@router.post("/cases/{case_id}/resolve")
def resolve(case_id: str, request: Request, body: Any = Depends(json_payload()), svc=Depends(service)):
    """Close a claimed case; a valid outcome records the violation through the penalty mapper, and the answer
    names it (`violation_id`) so an appeal can."""
    return metrics.counted_resolution(svc.queue.resolve(case_id, **asdict(resolution(body)), actor=actor_of(request),
                                                        role=subject_role(svc, case_id), now=now()))


@dataclass(frozen=True)
class Resolution:
    valid: bool
    severity: str | None
    fraud_confirmed: bool
    notes: str | None


def resolution(body: Any) -> Resolution:
    """An investigator's verdict on a case, read once for the API's JSON body and the console's form (which
    posts the same fields); RequestError with one message per bad field."""
    errors: list[FieldError] = []
    f = _Fields(body if body is not None else {}, "", errors)
    valid = f.obj.get("valid")
    if not isinstance(valid, bool):
        errors.append(FieldError("valid", "missing field: say true (valid) or false (not valid)" if valid is None
                                 else f"expected true or false, got {valid!r}"))
    severity = f.choice("severity", V.SEVERITIES, required=False)
    if valid is True and f.obj.get("severity") is None:
        errors.append(FieldError("severity", "a valid report needs a severity"))
    fraud = f.obj.get("fraud_confirmed", False)
    if not isinstance(fraud, bool):
        errors.append(FieldError("fraud_confirmed", f"expected true or false, got {fraud!r}"))
    notes = f.text("notes", required=False)
    if errors:
        raise RequestError(errors)
    return Resolution(valid, severity, fraud, notes)


@router.get("/alerts")
def alerts(svc=Depends(service)):
    """Open spike alerts: grouped reports, distinct reporters, incident or brigading and why."""
    return svc.queue.alerts("open")
