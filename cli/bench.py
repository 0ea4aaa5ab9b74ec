"""`docket bench`: the offline, online, queue, live and console benchmarks, written to results.json and results.md."""
from __future__ import annotations

from pathlib import Path

import typer

from cli.support import CliError, err, steps
from cli.support import run as _run


def _sizes(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        sizes = tuple(int(s.replace("_", "")) for s in text.split(",") if s.strip())
    except ValueError as e:
        raise CliError(f"--sizes must be comma-separated whole numbers, got {text!r}") from e
    if not sizes or min(sizes) < 100:
        raise CliError("--sizes needs at least one size, each at least 100 reports")
    return sizes


def bench(
    tiny: bool = typer.Option(False, "--tiny", help="Seconds-long run on tiny sizes that only proves the benchmarks work."),
    sizes: str | None = typer.Option(None, "--sizes", help="Offline suite sizes in reports, comma-separated "
                                                          "[default: 100000,1000000; with --tiny 2000,4000]."),
    suites: str = typer.Option("offline,online,queue,live,console,soak", "--suites",
                               help="Comma-separated: offline, online, queue, live, console, fuzz, soak."),
    soak_seconds: float | None = typer.Option(None, "--soak-seconds", min=1,
                                              help="How long the soak suite runs [default: 1800; with --tiny 20]."),
    out_dir: Path = typer.Option(Path("benchmarks"), "--out", help="Folder for results.json and results.md."),
    work_dir: Path | None = typer.Option(None, "--work", help="Scratch folder for simulated data, models and stores "
                                                              "[default: a folder under the system temp dir]."),
) -> None:
    """Benchmark on this machine: simulate, features, training and batch scoring at each size, the HTTP service,
    the queue, the live event feed and the console pages; write results.json (with the machine) and results.md (tables with targets)."""

    def go() -> None:
        from benchmarks.config import BenchConfig
        from benchmarks.run import SUITES, step_names
        from benchmarks.run import run as run_suites

        names = tuple(s.strip() for s in suites.split(",") if s.strip())
        unknown = [s for s in names if s not in SUITES]
        if unknown or not names:
            raise CliError(f"unknown suite(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SUITES)}")
        overrides = {k: v for k, v in (("sizes", _sizes(sizes)), ("work_dir", work_dir), ("soak_s", soak_seconds))
                     if v is not None}
        config = BenchConfig.make(tiny=tiny, **overrides)
        with steps("bench", step_names(config, names)) as advance:
            rows = run_suites(config, out_dir, names, on_step=advance)
        failed = [r for r in rows if r.get("pass") is False]
        broken = [r for r in rows if r.get("error")]
        err.print(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}: {len(rows)} rows, "
                  f"{len(failed)} target(s) missed, {len(broken)} error(s)", highlight=False)
        for r in broken:
            err.print(f"[yellow]error[/yellow] {r['suite']} {r.get('case', '')} {r.get('size', '')}: {r['error']}",
                      highlight=False, markup=False)

    _run(go)
