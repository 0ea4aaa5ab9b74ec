"""One JSON line per request, a request id on every answer, and requests counted by route template.

The request id is the caller's `X-Request-ID` when it is safe to repeat (1-64 characters of letters, digits and
`._:-`), else a new random one; it goes back in the `X-Request-ID` header of every answer (401s, 429s and the
direct routes too, since this middleware wraps all of them) and into the log line, so a caller's complaint finds
its line (`pid` names the worker process that answered). Paths are logged and counted as their route template
(`/cases/{case_id}`), never with the ids in them, so neither the log's route field nor a metric label grows with
the data. The key id is logged (it names a key, it is not one); the key never is.
"""
from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.routing import APIRoute

from serving.api import metrics

log = logging.getLogger("docket.requests")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
HEADER = b"x-request-id"
# BentoML's own routes, answered outside the app's routers.
SERVICE_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics", "/docs.json", "/schema.json", "/"})
UNMATCHED = "(unmatched)"


def request_id(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID if it is safe to repeat, else a new one."""
    for name, value in headers:
        if name.lower() == HEADER:
            text = value.decode("latin-1")
            if REQUEST_ID.match(text):
                return text
            break
    return uuid.uuid4().hex


class RouteTemplates:
    """path -> its route's template, from the routers' own routes (no id ever becomes a label or a log field)."""

    def __init__(self, routers: Sequence[APIRouter]):
        self._routes = [(route.path_regex, route.path) for router in routers for route in router.routes
                        if isinstance(route, APIRoute)]
        self._mounts = [(route.path_regex, route.path) for router in routers for route in router.routes
                        if not isinstance(route, APIRoute) and hasattr(route, "path_regex")]

    def __call__(self, path: str) -> str:
        if path in SERVICE_PATHS:
            return path
        for regex, template in (*self._routes, *self._mounts):
            if regex.match(path):
                return template
        return "/console/{path}" if path.startswith("/console/") else UNMATCHED


class JsonLines(logging.Formatter):
    """A log record as one JSON object: time, level, then the fields the record carries."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), **getattr(record, "fields", {"message": record.getMessage()})}
        return json.dumps(line, ensure_ascii=True, separators=(",", ":"))


def json_logger() -> logging.Logger:
    """docket.requests writing JSON lines to standard error (the service's log), once per process."""
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLines())
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


class RequestLog:
    """ASGI middleware, outside authentication: request id in and out, one JSON log line, the request counter."""

    def __init__(self, app, routers: Sequence[APIRouter]):
        self.app, self._templates, self._log, self._pid = app, RouteTemplates(routers), json_logger(), os.getpid()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        rid = request_id(scope.get("headers", []))
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        start, status = time.perf_counter(), 500

        async def send_with_id(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*kept, (HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = self._templates(scope.get("path", ""))
            elapsed = time.perf_counter() - start
            metrics.record_request(scope.get("method", ""), route, status, elapsed)
            self._log.info("request", extra={"fields": {
                "request_id": rid, "method": scope.get("method"), "route": route, "status": status,
                "duration_ms": round(elapsed * 1000, 2), "key_id": state.get("key_id"), "pid": self._pid}})
