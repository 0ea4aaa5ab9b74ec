"""Cursor paging for GET /queue and GET /audit: an opaque cursor in, the next page's cursor out.

The body stays what it always was, a JSON list (so every caller written before paging keeps working); the
cursor of the next page travels in the `Next-Cursor` response header, absent on the last page. A cursor is
URL-safe base64 of a small JSON object naming the route it belongs to, so it is opaque to callers (we may
change what it holds) and a cursor of one route sent to the other is a 422, not a wrong page.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi.responses import JSONResponse

from serving.input_checks import FieldError, RequestError

NEXT_CURSOR = "Next-Cursor"
MAX_CURSOR_CHARS = 1_024  # a queue cursor holds one case id (at most a few hundred characters)


def encode(kind: str, position: dict[str, Any]) -> str:
    """The opaque cursor for a page of `kind` ("queue", "audit") continuing after `position`."""
    raw = json.dumps({"k": kind, **position}, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, kind: str) -> dict[str, Any]:
    """The position a cursor of `kind` carries; RequestError (422, field `cursor`) for anything else."""
    bad = RequestError([FieldError("cursor", "not a cursor this route gave out (send the Next-Cursor header of "
                                             "the previous page unchanged)")])
    if len(cursor) > MAX_CURSOR_CHARS:
        raise bad
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(position, dict) or position.pop("k", None) != kind:
        raise bad
    return position


def paged(items: list, next_cursor: str | None) -> JSONResponse:
    """The page as the JSON list it always was, with the next page's cursor in its header when there is one."""
    return JSONResponse(items, headers={NEXT_CURSOR: next_cursor} if next_cursor else None)
