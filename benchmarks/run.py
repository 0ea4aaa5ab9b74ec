"""Run the benchmark suites and write `results.json` (rows + the machine they ran on) and `results.md`.

Each suite is a module with `run(config) -> list[dict]`; a row has at least `suite` and `case`, then
its figures, and where a target applies `target` (what it is) and `pass`. A suite that is not there
(or fails) becomes one row with `error`, so one broken suite never loses the others' figures.
"""
from __future__ import annotations

import importlib
import json
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from benchmarks.config import BenchConfig
from benchmarks.machine import PROBE_REPEATS, machine

SUITES: dict[str, str] = {"offline": "benchmarks.offline", "online": "benchmarks.online",
                          "queue": "benchmarks.queue_bench", "live": "benchmarks.live_bench",
                          "console": "benchmarks.console_bench",
                          "fuzz": "benchmarks.fuzz_bench", "soak": "benchmarks.soak_bench"}
# Columns first in each markdown table when a suite has them; the rest follow in the order they appear.
LEADING = ("case", "size", "concurrency", "wall_s", "cpu_s", "rows_per_s", "peak_rss_mb", "time_growth", "rss_ratio",
           "target", "pass")
HIDDEN = ("suite", "ok", "cpu_model", "group")  # cpu_model: the same in every row, named in the header
# Bulky figures (dicts, long text) that results.json keeps and the markdown tables leave out.
JSON_ONLY = ("store_counts", "stored_reported", "history_rows", "import_summary", "series_csv", "plot")


def step_names(config: BenchConfig, suites: Sequence[str]) -> list[str]:
    """The progress labels `run` passes to on_step, in order."""
    from benchmarks import offline

    return [name for s in suites for name in (offline.step_names(sorted(config.sizes)) if s == "offline" else [s])]


def run(config: BenchConfig, out_dir: Path, suites: Sequence[str] = tuple(SUITES),
        on_step: Callable[[str], None] = lambda name: None) -> list[dict]:
    """Run `suites` with `config`, write out_dir/results.json and out_dir/results.md, return the rows."""
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise ValueError(f"unknown suite(s) {', '.join(unknown)}; choose from {', '.join(SUITES)}")
    rows: list[dict] = []
    for suite in suites:
        rows.extend(_run_suite(suite, config, on_step))
        if suite != "offline":  # the offline suite marks each of its steps itself
            on_step(suite)
    write(rows, config, Path(out_dir))
    return rows


def _run_suite(suite: str, config: BenchConfig, on_step: Callable[[str], None]) -> list[dict]:
    try:
        module = importlib.import_module(SUITES[suite])
    except ModuleNotFoundError as e:
        if e.name != SUITES[suite]:
            raise
        return [{"suite": suite, "case": "-", "ok": False, "error": f"{SUITES[suite]} does not exist yet"}]
    try:
        if suite == "offline":
            return module.run(config, on_step=on_step)
        return [{"suite": suite, **row} for row in module.run(config)]
    except Exception as e:  # one suite failing must not lose the others' figures
        return [{"suite": suite, "case": "-", "ok": False,
                 "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=5)}]


def write(rows: list[dict], config: BenchConfig, out_dir: Path) -> tuple[Path, Path]:
    """results.json and results.md in out_dir; every row gets the machine's `cpu_model` (in place)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    info = machine()
    for row in rows:  # each row names its CPU, so a row copied out of this file still says what it ran on
        row.setdefault("cpu_model", info["cpu_model"])
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items() if k != "postgres_url"}
    settings["postgres"] = config.postgres_url is not None  # never write a connection string (it may hold a password)
    doc = {"machine": info, "config": settings, "results": rows}
    json_path, md_path = out_dir / "results.json", out_dir / "results.md"
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    md_path.write_text(markdown(rows, info, config))
    return json_path, md_path


def markdown(rows: list[dict], info: dict, config: BenchConfig) -> str:
    """One table per suite; a target column says what was required and whether it passed."""
    load = ", ".join(f"{x:g}" for x in info["load_average"] or [])
    lines = [
        f"Measured {info['date']} on {info['cores']} cores of {info.get('cpu_model') or 'an unknown CPU'}, "
        f"{info['ram_gb']:g} GB RAM, Python {info['python']}, "
        f"commit {(info['git_commit'] or 'unknown')[:10]}{' (dirty)' if info['git_dirty'] else ''}; "
        f"load average at the end {load}." + _probe_sentence(info.get("speed_probe"))
        + (" Tiny run: no targets apply." if config.tiny else ""),
        "",
    ]
    for suite in dict.fromkeys(r["suite"] for r in rows):
        lines += [f"### {suite}", ""]
        mine = [r for r in rows if r["suite"] == suite]
        groups = list(dict.fromkeys(r.get("group") for r in mine))
        if groups == [None]:
            lines += [*_table(mine), ""]
            continue
        for group in groups:  # a suite whose rows name a group gets one table per group
            lines += [f"#### {group or 'other'}", "", *_table([r for r in mine if r.get("group") == group]), ""]
    if any(r.get("suite") == "offline" and "time_growth" in r for r in rows):
        lines += ["Growth: `time_growth` = (time ratio) / (size ratio) from the smallest to the largest size; "
                  "1.0 is linear. `rss_ratio` is the peak-memory ratio.", ""]
    if any(r.get("suite") in ("online", "queue", "live", "console") and "server_cpu_ms_per_request" in r for r in rows):
        lines += ["`server_cpu_ms_per_request` is the server process tree's CPU time per request sent (online, live "
                  "/score and single events: warm-up included; live ingest: per batch of events; console: per page "
                  "or form request, warm-up left out): how much work a request is, in this machine's time. "
                  "`client_cpu_ms_per_request` is the load generator's; it is not a gauge of how fast the server's "
                  "work ran (between two hosts it moved 1.2-1.3x while the scoring pass moved 1.9x). To compare runs "
                  "or machines, compare the speed probe in the first line: the scoring pass's kind of work (Python, "
                  "tiny numpy operations, LightGBM contributions) timed in one process.", ""]
    return "\n".join(lines)


def _probe_sentence(probe: dict | None) -> str:
    """The speed probe's figures, to read every timing beside: the same work takes longer on a slower CPU."""
    if not probe:
        return ""
    return (f" Speed probe (fastest of {PROBE_REPEATS}, ms; lower is faster): Python loop {probe['python_ms']:.4g}, "
            f"70 tiny numpy ops {probe['numpy_ms']:.4g}, LightGBM 1-row contributions {probe['lightgbm_ms']:.4g}.")


def _table(rows: list[dict]) -> list[str]:
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k not in HIDDEN + JSON_ONLY and k != "traceback"]
    cols = [k for k in LEADING if k in keys] + [k for k in keys if k not in LEADING]
    out = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_cell(k, r.get(k)) for k in cols) + " |")
    return out


def _cell(key: str, value) -> str:
    if value is None:
        return ""
    if key == "pass":
        return "pass" if value else "**FAIL**"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|").replace("\n", " ")
