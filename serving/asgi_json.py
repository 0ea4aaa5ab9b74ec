"""Reading a request body and sending a JSON answer at the raw ASGI level, for the routes that answer there
(authentication, and /score and /rank: serving/score_routes.py)."""
from __future__ import annotations

import json
from typing import Any


class BodyTooLarge(ValueError):
    pass


async def read_body(receive, limit: int) -> bytes:
    """The whole request body; BodyTooLarge past `limit` bytes (the rest is never buffered)."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"the request body exceeds {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def send_json(send, status: int, content: Any) -> None:
    """`content` as a finished JSON response (the encoding Starlette's JSONResponse uses)."""
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
