"""Benchmarks: offline (simulate, features, train, batch score), online (HTTP service) and queue; `docket bench`."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def _original_env(name: str) -> str | None:
    """`name` as this process's environment had it before training was imported (see OMP_WAIT_POLICY below).

    Normally training is not imported yet, so os.environ is still the original. If it was, the environment the
    process started with is read from /proc/self/environ (Linux); failing that, the current value is all there is.
    """
    if "training.models" not in sys.modules:
        return os.environ.get(name)
    try:
        pairs = Path("/proc/self/environ").read_bytes().split(b"\0")
    except OSError:
        return os.environ.get(name)
    prefix = name.encode() + b"="
    return next((p[len(prefix):].decode(errors="replace") for p in pairs if p.startswith(prefix)), None)


# The environment's own OMP_WAIT_POLICY. Importing training.models does os.environ.setdefault("OMP_WAIT_POLICY",
# "PASSIVE"), and the benchmark harness imports training (to simulate and train), so without care the servers it
# starts would inherit PASSIVE while a server started by `make serve` does not. A benchmark must serve under the
# environment production has, so benchmarks.online gives its servers this value (or none). It is read here because
# this package is imported before any suite module, and `docket bench` imports it before anything imports training.
OMP_WAIT_POLICY: str | None = _original_env("OMP_WAIT_POLICY")
