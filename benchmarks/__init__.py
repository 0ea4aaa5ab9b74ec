"""Benchmarks: offline (simulate, features, train, batch score), online (HTTP service) and queue; `docket bench`."""
from __future__ import annotations

from config.settings import original_environment

# The environment's own OMP_WAIT_POLICY. Importing training.models does os.environ.setdefault("OMP_WAIT_POLICY",
# "PASSIVE"), and the benchmark harness imports training (to simulate and train), so without care the servers it
# starts would inherit PASSIVE while a server started by `make serve` does not. A benchmark must serve under the
# environment production has, so benchmarks.online gives its servers this value (or none). It is read here because
# this package is imported before any suite module, and `docket bench` imports it before anything imports training.
OMP_WAIT_POLICY: str | None = original_environment("OMP_WAIT_POLICY")
