"""The one JSON reader of request bodies (serving/api/strict_json.py): what json.loads alone let through."""
from __future__ import annotations

import pytest

from serving.api.strict_json import (
    MAX_DEPTH,
    BadJson,
    UnsupportedMedia,
    check_media_type,
    nesting_depth,
    parse_json,
    unstorable,
    unstorable_path,
)


def refusal(raw: bytes) -> BadJson:
    with pytest.raises(BadJson) as err:
        parse_json(raw)
    return err.value


def test_ordinary_json_is_read_as_json_loads_reads_it():
    raw = '{"reports": [{"d": "caf\\u00e9 \\ud83d\\ude00 [{", "n": 12, "x": 1.5, "b": true, "z": null}]}'.encode()
    assert parse_json(raw) == {"reports": [{"d": "café 😀 [{", "n": 12, "x": 1.5, "b": True, "z": None}]}


@pytest.mark.parametrize("raw", [b"", b"  \n"])
def test_an_empty_body_is_none(raw):
    assert parse_json(raw) is None


@pytest.mark.parametrize("raw, words", [
    (b"[" * 5000 + b"]" * 5000, "nested 5000 deep"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"at most {MAX_DEPTH}"),
    (b'{"a": ' + b"9" * 5000 + b"}", "a number of 5000 characters"),
    (b'{"a": 0.' + b"1" * 100 + b"}", "a number of 102 characters"),
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"a": 1e999}', "out of range"),
    (b'{"a": "\xff"}', "not UTF-8"),
    (b'{"a": "\xed\xa0\x80"}', "not UTF-8"),  # a surrogate encoded as UTF-8 bytes
    (b'{"a": ', "not JSON"),
])
def test_bodies_json_loads_would_choke_on_or_let_through_are_refused(raw, words):
    assert words in str(refusal(raw))


def test_the_deepest_allowed_body_is_read():
    assert parse_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None


@pytest.mark.parametrize("raw, field", [
    (b'{"reports": [{"description": "\\ud800"}]}', "reports[0].description"),
    (b'{"a": {"b": ["ok", "\\udc00x"]}}', "a.b[1]"),
    (b'"\\ud83d"', "body"),
    (b'{"\\ud800": 1}', "<key>"),
])
def test_a_lone_surrogate_is_refused_naming_where(raw, field):
    assert refusal(raw).field == field


def test_an_escaped_backslash_before_u_d800_is_plain_text():
    assert parse_json(b'{"a": "\\\\ud800"}') == {"a": "\\ud800"}
    assert unstorable_path({"a": ["fine"]}) is None


def test_brackets_inside_strings_do_not_count_towards_depth():
    assert nesting_depth(b'{"a": "[[[[{{{{\\"[[["}') == 1
    assert nesting_depth(b"42") == 0


@pytest.mark.parametrize("content_type", ["multipart/form-data", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "Multipart/Mixed"])
def test_forms_are_refused(content_type):
    with pytest.raises(UnsupportedMedia):
        check_media_type(content_type)


@pytest.mark.parametrize("content_type", [None, "application/json", "application/json; charset=utf-8", "text/plain"])
def test_json_and_unlabelled_bodies_are_read(content_type):
    check_media_type(content_type)


@pytest.mark.parametrize("raw, field", [
    (b'{"reports": [{"description": "a\\u0000b"}]}', "reports[0].description"),
    (b'{"a\\u0000": 1}', "<key>"),
])
def test_a_nul_character_is_refused_naming_where(raw, field):
    err = refusal(raw)
    assert err.field == field and "NUL" in str(err)


@pytest.mark.parametrize("text, refused", [("fine é 😀", False), ("a\x00b", True), ("\ud800", True)])
def test_unstorable_text(text, refused):
    assert (unstorable(text) is not None) == refused
