"""Fuzzing every JSON route from its OpenAPI description (schemathesis) against the running service (issue 15).

Every operation in /openapi.json gets EXAMPLES generated requests that fit its schema (positive: they reach the
contract checks and the domain below) and EXAMPLES that break it (negative: wrong types, missing and unknown
fields, odd strings), seeded (hypothesis `derandomize`), so a run is repeatable. No answer may be a 5xx, and none
may take longer than SLOW seconds. Failures are collected over all operations and reported together.
"""
from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

EXAMPLES = 20  # per operation and mode: about 80 s here for both modes on one store (each store runs it)
SLOW = 5.0


@pytest.fixture(scope="module")
def schema(service, keys):
    return schemathesis.openapi.from_url(f"{service}/openapi.json",
                                         headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=30)


def fuzz(operation, mode: GenerationMode, base_url: str, headers: dict[str, str]) -> list[str]:
    """What went wrong in EXAMPLES seeded requests to one operation: a 5xx, an answer slower than SLOW, no answer."""
    found: list[str] = []

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        start = time.monotonic()
        try:
            res = case.call(base_url=base_url, headers=headers, timeout=SLOW * 3)
        except Exception as err:  # a timeout or a dropped connection is a failure too
            found.append(f"{case.method} {case.formatted_path}: {type(err).__name__} body={case.body!r:.300}")
            return
        took = time.monotonic() - start
        if res.status_code >= 500 or took > SLOW:
            found.append(f"{case.method} {case.formatted_path}: {res.status_code} in {took:.1f}s "
                         f"body={case.body!r:.300} -> {res.text[:300]}")

    try:
        run()
    except Unsatisfiable:  # nothing to break (negative mode on a route without parameters or body)
        pass
    return found


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_generated_request_is_a_5xx_or_slow(service, keys, schema, mode):
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20  # the whole JSON API is described
    failures = [f for operation in operations for f in fuzz(operation, mode, service, headers)]
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
