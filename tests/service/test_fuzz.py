"""Fuzzing every JSON route from its OpenAPI description (schemathesis) against the running service (issue 15).

Every operation in /openapi.json gets EXAMPLES generated requests that fit its schema (positive: they reach the
contract checks and the domain below) and EXAMPLES that break it (negative: wrong types, missing and unknown
fields, odd strings), seeded (hypothesis `derandomize`), so a run is repeatable. No answer may be a 5xx, and none
may take longer than 5 s. Failures are collected over all operations and reported together. The fuzz suite of
`make bench` runs the same helper at 300 examples per operation and mode, and watches the worker's memory.
"""
from __future__ import annotations

import pytest
from schemathesis import GenerationMode

from benchmarks.fuzz_bench import fuzz, operations

EXAMPLES = 20  # per operation and mode: about 80 s here for both modes on one store (each store runs it)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])
def test_no_generated_request_is_a_5xx_or_slow(service, keys, mode):
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    every = operations(service, headers)
    assert len(every) >= 20  # the whole JSON API is described
    failures = [f for operation in every for f in fuzz(operation, mode, service, headers, EXAMPLES)[0]]
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures[:40])
