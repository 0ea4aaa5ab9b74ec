"""What the benchmark figures were measured on: the machine, its CPU and how fast it ran the server's kind of work.

The same code measured ~1.9x slower per scoring pass on one host than on the host of an earlier results.json,
which had not recorded the CPU. Cores, RAM and the load generator's CPU per request did not show it (the load
generator's moved only 1.2-1.3x), so every run now names the CPU model and times `speed_probe`: a fixed workload
shaped like the server's scoring pass, so figures from two runs can be put side by side with the speed of each.
"""
from __future__ import annotations

import functools
import os
import platform
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

PACKAGES = ("numpy", "pandas", "pyarrow", "lightgbm", "scikit-learn", "mlflow", "bentoml", "sqlalchemy")
REPO = Path(__file__).resolve().parents[1]
CPUINFO = Path("/proc/cpuinfo")
PROBE_REPEATS = 5  # each part of the probe is the fastest of this many repetitions


def machine() -> dict:
    """What the figures were measured on and with."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    mem_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:")), 0) if Path("/proc/meminfo").exists() else 0
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cores": os.cpu_count(), "cpu_model": cpu_model(), "ram_gb": round(mem_kb / 1024 ** 2, 1),
        "platform": platform.platform(), "python": platform.python_version(), "packages": versions,
        "load_average": _load(), "speed_probe": speed_probe(),
    }


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


# --- CPU model ---------------------------------------------------------------------------------------------

def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU as /proc/cpuinfo names it (lscpu's "Model name" is the same field), with family/model/stepping and MHz.

    A VM may only say "AMD EPYC"; the numbers tell its generation apart (family 25 model 1 is Milan). Takes the
    text so it can be tested; reads /proc/cpuinfo when none is given. "unknown" where there is nothing to read.
    """
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text()
        except OSError:
            return "unknown"
    fields = _first_processor(cpuinfo)
    name = " ".join(fields.get("model name", "").split())
    if not name:
        return "unknown"
    ids = " ".join(f"{label} {fields[key]}" for key, label in (("cpu family", "family"), ("model", "model"),
                                                                 ("stepping", "stepping")) if fields.get(key))
    mhz = _mhz(fields.get("cpu MHz"))
    detail = ", ".join(part for part in (ids, mhz) if part)
    return f"{name} ({detail})" if detail else name


def _first_processor(text: str) -> dict[str, str]:
    """The "key : value" fields of the first processor block (every core repeats the same model)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _mhz(value: str | None) -> str:
    try:
        return f"{float(value):.0f} MHz" if value else ""
    except ValueError:
        return ""


# --- speed probe -------------------------------------------------------------------------------------------

def speed_probe() -> dict[str, float]:
    """Milliseconds this machine takes, in this process, for three fixed pieces of the scoring pass's kind of work.

    `python_ms`: a pure-Python loop; `numpy_ms`: one pass of 70 tiny numpy operations like the history look-ups
    (searchsorted on a sorted int64 array, where, astype); `lightgbm_ms`: contributions (pred_contrib) of a small
    fixed model for one row, one thread. Each is the fastest of PROBE_REPEATS repetitions (the least disturbed by
    neighbours), per unit of work. Deterministic and under a few seconds, model training included.
    """
    booster, row = _probe_model()
    keys, needles = np.arange(0, 300_000, 3, dtype=np.int64), np.array([5, 3_000, 150_001, 299_997], dtype=np.int64)
    return {
        "python_ms": _fastest(_python_loop, 1),
        "numpy_ms": _fastest(lambda: _numpy_pass(keys, needles), 50),
        "lightgbm_ms": _fastest(lambda: booster.predict(row, pred_contrib=True, num_threads=1), 20),
    }


def _fastest(work: Callable[[], object], inner: int) -> float:
    """The fastest of PROBE_REPEATS repetitions of `inner` calls of work, in ms per call."""
    best = float("inf")
    for _ in range(PROBE_REPEATS):
        t0 = time.perf_counter()
        for _ in range(inner):
            work()
        best = min(best, (time.perf_counter() - t0) / inner)
    return round(best * 1000, 4)


def _python_loop() -> int:
    """Dicts, string formatting and arithmetic: what building a response's reasons does."""
    total = 0
    for i in range(20_000):
        item = {"name": f"f{i % 37}", "value": i * 0.5}
        total += len(item["name"]) + int(item["value"]) % 7
    return total


def _numpy_pass(keys: np.ndarray, needles: np.ndarray) -> np.ndarray:
    """70 tiny operations (14 x 5), the shape of the per-report history look-ups."""
    out = needles
    for _ in range(14):
        lo = np.searchsorted(keys, needles, side="left")
        hi = np.searchsorted(keys, needles, side="right")
        n = hi - lo
        found = np.where(n > 0, n, 0)
        out = found.astype(np.float64)
    return out


@functools.cache
def _probe_model():
    """A small LightGBM model trained once on seeded synthetic data (2,000 rows x 20 features, 200 rounds), one row.

    training.models is imported first, as the server does, so that if this is the first LightGBM in the process,
    OpenMP still starts with the project's wait policy (later training in the same process depends on it).
    """
    import lightgbm as lgb

    import training.models  # noqa: F401

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 20))
    y = (X[:, 0] + 0.5 * X[:, 1] ** 2 - X[:, 2] * X[:, 3] + rng.normal(scale=0.5, size=2_000) > 0.5).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "learning_rate": 0.05, "num_threads": 1, "seed": 0,
              "deterministic": True, "force_row_wise": True, "verbose": -1}
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=200)
    return booster, X[:1]
