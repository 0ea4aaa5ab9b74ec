"""The one reading of a resolve request, shared by POST /cases/{id}/resolve and the console's resolve form."""
from __future__ import annotations

import pytest

from serving.api.queue import Resolution, resolution
from serving.input_checks import RequestError


def messages(body) -> dict[str, str]:
    with pytest.raises(RequestError) as err:
        resolution(body)
    return {e.field: e.message for e in err.value.errors}


def test_a_valid_verdict_with_its_severity_is_read_with_defaults():
    assert resolution({"valid": True, "severity": "high"}) == Resolution(True, "high", False, None)
    assert resolution({"valid": False, "fraud_confirmed": True, "notes": "seen before"}) == \
        Resolution(False, None, True, "seen before")


@pytest.mark.parametrize("body, expected", [
    ({}, {"valid": "missing field: say true (valid) or false (not valid)"}),
    (None, {"valid": "missing field: say true (valid) or false (not valid)"}),
    ({"valid": "yes"}, {"valid": "expected true or false, got 'yes'"}),
    ({"valid": True}, {"severity": "a valid report needs a severity"}),
    ({"valid": True, "severity": None}, {"severity": "a valid report needs a severity"}),
    ({"valid": True, "severity": "extreme"}, {"severity": "unknown value 'extreme' (allowed: low, medium, high, critical)"}),
    ({"valid": False, "fraud_confirmed": "no"}, {"fraud_confirmed": "expected true or false, got 'no'"}),
    ({"valid": 1, "notes": ""}, {"valid": "expected true or false, got 1",
                                 "notes": "expected a non-empty string, got ''"}),
])
def test_each_bad_field_gets_its_own_message(body, expected):
    assert messages(body) == expected
