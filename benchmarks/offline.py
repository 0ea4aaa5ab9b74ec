"""The offline suite: simulate, build features, train and batch-score at each size, one subprocess per step.

Each step runs in a child process of its own (`python -m benchmarks.offline STEP SIZE WORK_DIR`), so its
peak resident memory is that step's alone: the parent reads it from the child's rusage (`os.wait4`)
once it exits. The child times only the work the step is about (not interpreter start-up, imports or
reading the Parquet tables, which it reports separately as `load_s`) and prints one JSON line. Beside
wall time it reports `cpu_s`, the CPU seconds of all its threads over the same section: on a shared
machine wall time depends on the neighbours, CPU time much less (with 2 threads, cpu_s / 2 is about
what an idle 2-core machine would take for the parallel parts).

Steps (rows are always the size, i.e. reports, so rows/s compare across steps):
  simulate     simulator.simulate.simulate + write the Parquet tables
  features     History.from_tables + report_features + order_features
  train_models the four LightGBM models (validity, severity, report fraud, order fraud) fitted and
               calibrated exactly as `docket train` fits them on the default windows; features excluded
  train_full   training.train.train: features, the models, every baseline, the queue replay, MLflow
  score        batch scoring: History.from_tables, then report features + P(valid), P(severity), P(fraud)
               and the priority for every report (training.batch_scoring: Scorer's features and models
               without the per-row reasons and dicts, which are the online response's concern; the
               features and the models overlap, so they are timed together)
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.config import BenchConfig
from config.settings import Settings, process_environment

STEPS: tuple[str, ...] = ("simulate", "features", "train_models", "train_full", "score")
TARGET_SIZE = 1_000_000  # the targets are stated for 1M reports
TARGETS_S = {"train_models": 180.0, "train_full": 180.0, "score": 30.0}
TARGET_RSS_MB = 6 * 1024
REPO = Path(__file__).resolve().parents[1]


def step_names(sizes: Sequence[int]) -> list[str]:
    """The progress labels of a run, in order."""
    return [f"offline {step} {size:,}" for size in sizes for step in STEPS]


def run(config: BenchConfig, on_step: Callable[[str], None] = lambda name: None) -> list[dict]:
    """Every step at every size (smallest first), then growth from the smallest to the largest size."""
    sizes = sorted(config.sizes)
    rows = []
    progress = Path(config.work_dir) / "offline-rows.jsonl"  # each row as it lands, should a long run be cut short
    progress.parent.mkdir(parents=True, exist_ok=True)
    progress.write_text("")
    for size in sizes:
        for step in STEPS:
            rows.append(_run_child(step, size, config))
            with open(progress, "a") as f:
                f.write(json.dumps(rows[-1]) + "\n")
            on_step(f"offline {step} {size:,}")
    add_growth(rows)
    return rows


def add_growth(rows: list[dict]) -> None:
    """On each step's largest-size row: how time and memory grew from the smallest size, per unit of size
    (time_growth 1.0 = linear; 10x the rows in 10x the time)."""
    by_step: dict[str, list[dict]] = {}
    for r in rows:
        by_step.setdefault(r["case"], []).append(r)
    for group in by_step.values():
        group.sort(key=lambda r: r["size"])
        small, large = group[0], group[-1]
        if small is large or not small.get("ok") or not large.get("ok"):
            continue
        size_ratio = large["size"] / small["size"]
        large["growth_from"] = small["size"]
        large["time_ratio"] = round(large["wall_s"] / small["wall_s"], 3)
        large["time_growth"] = round(large["time_ratio"] / size_ratio, 3)
        large["rss_ratio"] = round(large["peak_rss_mb"] / small["peak_rss_mb"], 3)


def _run_child(step: str, size: int, config: BenchConfig) -> dict:
    work = Path(config.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    inherited = process_environment()
    env = {**inherited, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), inherited.get("PYTHONPATH")])),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / f'mlflow-{size}.db'}", "DOCKET_SEED": str(config.seed)}
    log = work / f"{step}-{size}.log"
    started = time.perf_counter()
    with open(log, "w") as err:
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.offline", step, str(size), str(work)],
                                 cwd=work, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        try:
            stdout, _ = child.communicate()
        except BaseException:  # interrupted: do not leave the step running on its own
            child.kill()
            raise
        # communicate() has reaped the child; its peak RSS is in RUSAGE_CHILDREN only cumulatively (a max over
        # all children so far), so the child also reports its own VmHWM, which is what we record.
    elapsed = time.perf_counter() - started
    row = {"suite": "offline", "case": step, "size": size, "ok": child.returncode == 0,
           "process_s": round(elapsed, 2)}
    if child.returncode != 0:
        row["error"] = _tail(log)
        return row
    row.update(json.loads(stdout.strip().splitlines()[-1]))
    row["rows_per_s"] = round(size / row["wall_s"]) if row["wall_s"] > 0 else None
    _judge(row, config)
    return row


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text().strip().splitlines()[-lines:])


def _judge(row: dict, config: BenchConfig) -> None:
    """Targets apply at 1M reports (a full run); tiny runs only prove the code works."""
    if config.tiny or row["size"] < TARGET_SIZE:
        return
    limit = TARGETS_S.get(row["case"])
    checks = [row["peak_rss_mb"] <= TARGET_RSS_MB]
    row["target"] = f"peak RSS < {TARGET_RSS_MB / 1024:g} GB"
    if limit is not None:
        checks.append(row["wall_s"] <= limit)
        row["target"] = f"< {limit:g} s, " + row["target"]
    row["pass"] = all(checks)


# ---- the child side: one step, timed, one JSON line on stdout ----

def _peak_rss_mb() -> float:
    """This process's high-water resident memory (VmHWM), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # pragma: no cover - not Linux


def _data_dir(work: Path, size: int) -> Path:
    return work / f"data-{size}"


def _load(work: Path, size: int) -> tuple[dict, float]:
    from features.io import load_tables

    t0 = time.perf_counter()
    tables = load_tables(_data_dir(work, size))
    return tables, time.perf_counter() - t0


def _simulate(size: int, work: Path) -> dict:
    from features.io import write_tables
    from simulator.simulate import simulate

    t0, c0 = time.perf_counter(), time.process_time()
    tables = simulate(size, seed=Settings.from_env().seed)
    t1 = time.perf_counter()
    write_tables(tables, _data_dir(work, size))
    t2 = time.perf_counter()
    return {"wall_s": t2 - t0, "cpu_s": time.process_time() - c0, "generate_s": t1 - t0, "write_s": t2 - t1, "orders": len(tables["orders"]),
            "accounts": len(tables["accounts"])}


def _features(size: int, work: Path) -> dict:
    from features.build import order_features, report_features
    from features.history import History

    tables, load_s = _load(work, size)
    t0, c0 = time.perf_counter(), time.process_time()
    history = History.from_tables(tables)
    t1 = time.perf_counter()
    report_features(tables["reports"], history)
    t2 = time.perf_counter()
    order_features(tables["orders"], history)
    t3 = time.perf_counter()
    return {"wall_s": t3 - t0, "cpu_s": time.process_time() - c0, "load_s": load_s, "history_s": t1 - t0, "report_features_s": t2 - t1,
            "order_features_s": t3 - t2, "orders": len(tables["orders"])}


def _train_models(size: int, work: Path) -> dict:
    from config import settings as S
    from training.evaluation_data import order_split, prepare, report_split
    from training.window_scoring import fit_order_model, fit_report_models
    from training.windows import resolve_windows

    tables, load_s = _load(work, size)
    settings = S.Settings.from_env()
    threads, seed = max(settings.num_threads, 2), settings.seed  # as training.train.train
    t0 = time.perf_counter()
    prep = prepare(tables)
    w = resolve_windows(tables)
    reports = report_split(prep.reports, w)
    prep.reports = None  # as train (evaluate with keep_rows=False): the cut rows are all the fits need
    orders = order_split(prep.orders, w, prep.data_end)
    prep.orders = None
    t1, c1 = time.perf_counter(), time.process_time()
    report_models = fit_report_models(reports, seed, threads)
    t2 = time.perf_counter()
    order_model = fit_order_model(orders, seed, threads)
    t3 = time.perf_counter()
    with open(work / f"models-{size}.pkl", "wb") as f:
        pickle.dump({"report": report_models, "order": order_model}, f)
    return {"wall_s": t3 - t1, "cpu_s": time.process_time() - c1, "load_s": load_s, "features_s": t1 - t0, "report_models_s": t2 - t1,
            "order_model_s": t3 - t2, "train_reports": len(reports.train), "train_orders": len(orders.train)}


def _train_full(size: int, work: Path) -> dict:
    from config import settings as S
    from policy.file import load_queue_policy
    from training.train import train

    tables, load_s = _load(work, size)
    marks: dict[str, float] = {}
    t0, c0 = time.perf_counter(), time.process_time()
    train(tables, S.Settings.from_env(), rules=load_queue_policy(),
          on_step=lambda name: marks.setdefault(f"{name.replace(' ', '_')}_at_s", round(time.perf_counter() - t0, 2)))
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "load_s": load_s, **marks}


def _score(size: int, work: Path) -> dict:
    from features.history import History
    from training.batch_scoring import score_batch

    tables, load_s = _load(work, size)
    with open(work / f"models-{size}.pkl", "rb") as f:
        models = pickle.load(f)["report"]
    t0, c0 = time.perf_counter(), time.process_time()
    history = History.from_tables(tables)
    t1 = time.perf_counter()
    score_batch(tables["reports"], history, models.validity, models.severity, models.fraud)
    t2 = time.perf_counter()
    return {"wall_s": t2 - t0, "cpu_s": time.process_time() - c0, "load_s": load_s, "history_s": t1 - t0,
            "features_and_predict_s": t2 - t1}


CHILD_STEPS = {"simulate": _simulate, "features": _features, "train_models": _train_models,
               "train_full": _train_full, "score": _score}


def main(argv: Sequence[str]) -> None:
    step, size, work = argv[0], int(argv[1]), Path(argv[2])
    result = CHILD_STEPS[step](size, work)
    result = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
