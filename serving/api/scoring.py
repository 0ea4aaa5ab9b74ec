"""Scoring routes: POST /score and /rank (reports with features, models and reasons) and POST /predict/fraud
(the fraud model alone on feature rows, as `mlflow models serve` of docket-fraud would answer).

/score and /rank are `direct` routes (serving.api.direct): a one-report /score costs a few milliseconds, and the
routing stack in front of an ordinary route cost about a third as much again. They read their body themselves. The
service's `scored` does the work; this module only speaks HTTP.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from serving.api.asgi import json_bytes
from serving.api.routing import BATCH_BODY_BYTES, direct, json_body, runtime_of, service
from serving.input_checks import FieldError, RequestError
from training.scoring import rank_order

router = APIRouter()


def _reports(payload: Any) -> Any:
    """The reports of a {"reports": [...]} body; 422 naming the field for any other shape."""
    if not isinstance(payload, dict):
        raise RequestError([FieldError(
            "body", f'expected an object {{"reports": [...]}}, got {type(payload).__name__}')])
    unknown = sorted(set(payload) - {"reports"})
    if unknown:
        raise RequestError([FieldError(name, "unknown field (allowed: reports)") for name in unknown])
    return payload.get("reports")


async def _scored(request: Request, svc) -> list[dict]:
    return await svc.scored(_reports(await json_body(request, BATCH_BODY_BYTES)))


@router.post("/score")
@direct
async def score(request: Request, svc=Depends(service)) -> Response:
    """Each report's validity, severity, fraud risk, priority and reasons, in request order."""
    return Response(json_bytes(await _scored(request, svc)), media_type="application/json")


@router.post("/rank")
@direct
async def rank(request: Request, svc=Depends(service)) -> Response:
    """The same reports ordered by priority (ties in request order)."""
    return Response(json_bytes(rank_order(await _scored(request, svc))), media_type="application/json")


@router.post("/predict/fraud")
async def predict_fraud(request: Request, svc=Depends(service)):
    """Fraud risk of feature rows in MLflow's `dataframe_split` shape: the fraud model only (no features, no
    reasons), the same work as `mlflow models serve` of docket-fraud."""
    payload = await json_body(request, BATCH_BODY_BYTES)
    if not isinstance(payload, dict):
        raise RequestError([FieldError("body", f"expected an object, got {type(payload).__name__}")])
    unknown = sorted(set(payload) - {"dataframe_split"})
    if unknown:
        raise RequestError([FieldError(name, "unknown field (allowed: dataframe_split)") for name in unknown])
    return runtime_of(svc).predict_fraud(payload.get("dataframe_split"))
