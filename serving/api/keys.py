"""HTTP routes of API keys (admin only, serving/api/auth.py): create, list, revoke. The key store is
serving/api/key_store.py; these only read bodies and answer."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from serving.api.key_store import ROLES, KeyError_, check_expiry, create_key, list_keys, revoke_key
from serving.api.routing import actor_of, json_payload, now, service
from serving.input_checks import FieldError, RequestError, parse_timestamp

router = APIRouter()
KEY_FIELDS = ("role", "expires_at")


@router.post("/keys")
def new_key(request: Request, body: Any = Depends(json_payload()), svc=Depends(service)):
    """Create an API key: `{"role", "expires_at"?}`; the key is in this response and nowhere else."""
    at = now()
    role, expires_at = _key_request(body, at)
    key = create_key(svc.queue.engine, role, actor=actor_of(request), now=at, expires_at=expires_at)
    return JSONResponse({"role": role, "key": key, "key_id": key.split("_")[1],
                         "expires_at": expires_at.isoformat() if expires_at else None}, status_code=201)


@router.get("/keys")
def keys(svc=Depends(service)):
    """Every key: id, role, created, expiry, revoked; never a secret."""
    return list_keys(svc.queue.engine)


@router.post("/keys/{key_id}/revoke")
def revoke(key_id: str, request: Request, svc=Depends(service)):
    """Revoke a key, refused by every worker from the next request on; again: 200 with the first revocation."""
    return revoke_key(svc.queue.engine, key_id, actor=actor_of(request), now=now())


def _key_request(body: Any, at: datetime) -> tuple[str, datetime | None]:
    """(role, expires_at) of a POST /keys body; RequestError naming every bad field."""
    if body is None:  # no body, or `null`: every field is missing, named as such
        body = {}
    if not isinstance(body, dict):
        raise RequestError([FieldError("body", 'expected a JSON object {"role": ..., "expires_at": ...}')])
    errors = [FieldError(name, "unknown field") for name in body if name not in KEY_FIELDS]
    role = body.get("role")
    if role is None:
        errors.append(FieldError("role", "missing field"))
    elif role not in ROLES:
        errors.append(FieldError("role", f"unknown value {role!r} (allowed: {', '.join(ROLES)})"))
    expires_at = None
    if body.get("expires_at") is not None:  # the API's one timestamp reader: ISO-8601, no zone = UTC, sane range
        when = parse_timestamp(body["expires_at"], "expires_at", errors)
        try:
            expires_at = when.to_pydatetime() if when is not None else None
            check_expiry(expires_at, at)
        except KeyError_ as err:
            errors.append(FieldError("expires_at", str(err)))
    if errors:
        raise RequestError(errors)
    return role, expires_at
