"""Reading a request body with a size limit, and JSON at the raw ASGI level (the authentication middleware
answers there, before any route)."""
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
            raise BodyTooLarge(f"the request body exceeds this route's limit of {limit:,} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def json_bytes(content: Any) -> bytes:
    """`content` encoded as Starlette's JSONResponse encodes it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


async def send_json(send, status: int, content: Any, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """`content` as a finished JSON response, for the authentication middleware (which answers before routing)."""
    body = json_bytes(content)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
