"""The one JSON reader of every request body: bytes in, a plain value out, or a 4xx saying what was wrong.

`json.loads` alone lets a caller hurt the service: 5,000 nested brackets raise RecursionError, an integer of
5,000 digits raises ValueError (Python's 4,300-digit guard), NaN and Infinity come back as floats, a
`"\\ud800"` escape becomes a string no encoder can write back and `"\\u0000"` one PostgreSQL refuses. None of
those is a JSONDecodeError, so nothing mapped them and /score hung until BentoML's 60 s timeout. Here each is
refused before or while parsing, with a message that says where. Pure: no I/O, no request; serving.api.routing
reads the body and calls `parse_json`.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

MAX_DEPTH = 32  # our deepest body is 4 levels (/penalty history[i].actions[j]; /predict/fraud data[i][j])
MAX_NUMBER_CHARS = 40  # 2**53 has 16 digits and a float's full repr fewer than 25 characters

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F]|0000)")  # a surrogate or NUL, the only ways to write them
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class BadJson(ValueError):
    """A body that is not strict JSON within the limits: 400, naming where when a field can be named."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


def parse_json(raw: bytes) -> Any:
    """`raw` as a JSON value (None for an empty body); BadJson for anything else: not UTF-8, not JSON,
    nested deeper than MAX_DEPTH, a number longer than MAX_NUMBER_CHARS, NaN or Infinity, a lone surrogate."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadJson(f"the request body is not UTF-8 (byte {err.start}: {err.reason})") from err
    depth = nesting_depth(raw)
    if depth > MAX_DEPTH:
        raise BadJson(f"the request body is nested {depth} deep (at most {MAX_DEPTH})")
    try:
        value = json.loads(text, parse_int=_integer, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as err:
        raise BadJson(f"the request body is not JSON ({err})") from err
    except RecursionError as err:  # cannot happen below MAX_DEPTH; kept so it is never a 500
        raise BadJson("the request body is nested too deep") from err
    if _UNSTORABLE_ESCAPE.search(raw):
        found = unstorable_path(value)
        if found is not None:
            where, why = found
            raise BadJson(f"{where or 'body'}: {why}", where or "body")
    return value


def nesting_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON bytes (brackets inside strings do not count)."""
    if b"[" not in raw and b"{" not in raw:
        return 0
    bare = np.frombuffer(_STRING.sub(b'""', raw), np.uint8)
    steps = np.isin(bare, _OPEN).astype(np.int32) - np.isin(bare, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def _number_text(text: str) -> None:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJson(f"a number of {len(text)} characters (at most {MAX_NUMBER_CHARS}): {text[:20]}...")


def _integer(text: str) -> int:
    _number_text(text)
    return int(text)


def _float(text: str) -> float:
    _number_text(text)
    value = float(text)
    if not math.isfinite(value):
        raise BadJson(f"the number {text} is out of range")
    return value


def _constant(text: str) -> float:
    raise BadJson(f"{text} is not a JSON number")


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored or sent back as text, or None: a lone UTF-16 surrogate is not UTF-8, and a NUL
    character is refused by PostgreSQL (a DataError, once a 500 on GET /audit?entity_id=%00)."""
    if "\x00" in text:
        return "a NUL character (\\u0000) is not allowed in text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate escape is not text"
    return None


def unstorable_path(value: Any, path: str = "") -> tuple[str, str] | None:
    """(where, why) of the first string or object key in a parsed value that `unstorable` refuses, the place
    written as `reports[0].description`; None when there is none. Only called when the raw body has an escape
    that could make one."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            why = unstorable(item)
            if why:
                return where, why
        elif isinstance(item, dict):
            for key, child in item.items():
                why = unstorable(key)
                if why:
                    return (f"{where}.<key>" if where else "<key>"), why
                stack.append((child, f"{where}.{key}" if where else key))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


class UnsupportedMedia(ValueError):
    """A body sent as a form (multipart or urlencoded) to a JSON route: 415."""


FORM_TYPES = ("multipart/", "application/x-www-form-urlencoded")


def check_media_type(content_type: str | None) -> None:
    """UnsupportedMedia for a form content type: a JSON route never parses forms (a multipart body without a
    boundary once reached a form parser and was a 500). No content type, or any other, is read as JSON."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media.startswith(FORM_TYPES):
        raise UnsupportedMedia(f"expected a JSON body (content-type application/json), got {media}")
