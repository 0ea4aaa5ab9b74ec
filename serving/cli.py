"""The `docket` command line: one command per stage, errors turned into exit codes here only."""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from features import settings as S

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Docket: Trust & Safety triage and fraud scoring.")
err = Console(stderr=True)
out = Console()


DATA_HELP = "Folder with the tables, Parquet or CSV [default: DOCKET_DATA_DIR or ./data]."


def _data_dir(data: Path | None) -> Path:
    return data or S.Settings.from_env().data_dir


class CliError(Exception):
    """A failure to report as one readable line and a non-zero exit."""


@contextmanager
def steps(title: str, names: Sequence[str]) -> Iterator[Callable[[str], None]]:
    """A progress bar over named stages; yields the callback that marks a stage done."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=False) as progress:
        task = progress.add_task(f"{title}: {names[0] if names else ''}", total=len(names))
        done = iter(names[1:])

        def advance(step: str) -> None:
            progress.update(task, advance=1, description=f"{title}: {next(done, 'done')}")

        yield advance


def _run(fn: Callable[[], None]) -> None:
    """Call fn, mapping the project's expected failures to exit code 2 and a one-line message."""
    from features.validate import ContractError
    from training.registry import ModelNotFound

    try:
        fn()
    except ContractError as e:
        err.print(f"[red]error:[/red] invalid data: {len(e.problems)} problem(s)", highlight=False)
        for line in str(e).splitlines():
            err.print(f"  {line}", highlight=False, markup=False)
        raise typer.Exit(2)
    except (CliError, ModelNotFound, FileNotFoundError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2)


@app.command()
def simulate(
    reports: int = typer.Option(50_000, "--reports", min=100, help="Number of reports to generate."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same data."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder to write the Parquet tables to [default: DOCKET_DATA_DIR or ./data]."),
    days: int = typer.Option(365, "--days", min=30, help="Length of the simulated period in days."),
) -> None:
    """Generate a marketplace data set (accounts, orders, reports, enforcements, outcomes, truth)."""

    def go() -> None:
        from features.io import write_tables
        from features.simulate import SIMULATION_STEPS
        from features.simulate import simulate as run

        target = _data_dir(out_dir)
        start = time.perf_counter()
        with steps("simulate", list(SIMULATION_STEPS)) as advance:
            tables = run(reports, seed=seed, days=days, on_step=advance)
        write_tables(tables, target)
        summary = ", ".join(f"{len(df):,} {name}" for name, df in tables.items())
        err.print(f"wrote {summary} to {target} in {time.perf_counter() - start:.1f}s", highlight=False)

    _run(go)


@app.command()
def validate(data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Check a data set against the data contract; exit 2 with every problem listed if it fails."""

    def go() -> None:
        from features.io import load_tables

        tables = load_tables(_data_dir(data))
        err.print("valid: " + ", ".join(f"{len(df):,} {n}" for n, df in tables.items()), highlight=False)

    _run(go)


@app.command()
def features(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    out_file: Path | None = typer.Option(None, "--out", help="Write the report features to this Parquet file."),
) -> None:
    """Build point-in-time features for every report and order and say how long it took."""

    def go() -> None:
        from features.build import History, order_features, report_features
        from features.io import load_tables

        tables = load_tables(_data_dir(data))
        with steps("features", ["index history", "report features", "order features"]) as advance:
            t0 = time.perf_counter()
            history = History.from_tables(tables)
            advance("index")
            t1 = time.perf_counter()
            X = report_features(tables["reports"], history)
            advance("reports")
            t2 = time.perf_counter()
            order_features(tables["orders"], history)
            advance("orders")
            t3 = time.perf_counter()
        err.print(f"history {t1 - t0:.1f}s, {len(X):,} reports {t2 - t1:.1f}s, "
                  f"{len(tables['orders']):,} orders {t3 - t2:.1f}s, total {t3 - t0:.1f}s", highlight=False)
        if out_file:
            X.to_parquet(out_file)

    _run(go)


@app.command()
def train(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    alias: str = typer.Option(S.CHAMPION, "--alias", help="Alias to point at the new versions."),
    unless_champion: bool = typer.Option(False, "--unless-champion", help="Do nothing if a champion already exists."),
) -> None:
    """Train both models on the past, validate on the future, log to MLflow and register them."""

    def go() -> None:
        import mlflow

        from features.io import load_tables
        from training import registry
        from training.train import TRAIN_STEPS
        from training.train import train as run

        settings = S.Settings.from_env()
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        # Cloudpickle is chosen on purpose (the bundle holds LightGBM boosters): keep its notice out of the way.
        logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
        if unless_champion and all(registry.has_alias(m, S.CHAMPION) for m in (S.SEVERITY_MODEL, S.FRAUD_MODEL)):
            err.print("champion models already registered; nothing to do")
            return
        tables = load_tables(_data_dir(data))
        with steps("train", list(TRAIN_STEPS)) as advance:
            result = run(tables, settings, alias=alias, on_step=advance)
        table = Table(title=f"validation window metrics (run {result.run_id[:8]})")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for k, v in result.metrics.items():
            table.add_row(k, f"{v:.4f}")
        out.print(table)
        err.print("registered " + ", ".join(f"{n} v{v} @{alias}" for n, v in result.versions.items()), highlight=False)

    _run(go)


keys_app = typer.Typer(no_args_is_help=True, help="API keys: stored hashed, shown once.")
app.add_typer(keys_app, name="keys")


def _store():
    from serving.store import make_engine, migrate

    engine = make_engine(S.Settings.from_env().database_url)
    migrate(engine)
    return engine


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


@keys_app.command("create")
def keys_create(role: str = typer.Option(..., "--role", help="intake, investigator or admin.")) -> None:
    """Create a key and print it, and only it, on standard output (it is not shown again)."""

    def go() -> None:
        from serving.auth import KeyError_, create_key

        try:
            key = create_key(_store(), role, actor="cli", now=_now())
        except KeyError_ as e:
            raise CliError(str(e)) from e
        print(key)

    _run(go)


@keys_app.command("bootstrap")
def keys_bootstrap() -> None:
    """On a fresh install (no admin key yet) create one admin key and print it once; otherwise do nothing."""

    def go() -> None:
        from serving.auth import create_key, has_keys

        engine = _store()
        if has_keys(engine, "admin"):
            err.print("an admin key exists already (create more with: docket keys create --role admin)")
            return
        key = create_key(engine, "admin", actor="cli:bootstrap", now=_now())
        err.print("[bold]Your admin API key (shown once, store it now):[/bold]")
        print(key)
        err.print("use it as: curl -H 'Authorization: Bearer <key>' ...")

    _run(go)


@app.command()
def monitor(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    as_of: str | None = typer.Option(None, "--as-of", help="ISO-8601 time to monitor up to [default: the data's last order]."),
) -> None:
    """Run transaction monitoring and the fulfilment rules over a data set and feed the queue."""

    def go() -> None:
        import pandas as pd

        from features.build import History
        from features.io import load_tables
        from serving.ledger import Ledger
        from serving.monitors import MonitorConfig, run_monitors
        from serving.penalty import load_policy
        from serving.queue import Queue
        from serving.queue_policy import load_queue_policy
        from serving.runtime import load_scorer
        from serving.triage import Triage

        settings = S.Settings.from_env()
        tables = load_tables(_data_dir(data))
        qp = load_queue_policy()
        config = MonitorConfig.from_dict(qp.monitors)
        with steps("monitor", ["index history", "load models", "transactions", "fulfilment", "intake"]) as advance:
            history = History.from_tables(tables)
            advance("index")
            scorer = load_scorer(settings)
            advance("models")
            stamp = pd.Timestamp(as_of) if as_of else tables["orders"]["created_at"].max()
            when = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
            when = when.to_pydatetime()
            found = run_monitors(tables, history, scorer, when, config, advance)
            engine = _store()
            triage = Triage(Queue(engine, qp, Ledger(engine, load_policy())), qp, max(len(found), 1))
            result = triage.intake(found, history, scorer, actor="cli:monitor", now=_now()) if found else \
                {"accepted": [], "already_known": []}
            advance("intake")
        kinds = {t: sum(r["reporter_type"] == t for r in found) for t in ("automated_detection", "rules_engine")}
        err.print(f"{kinds['automated_detection']} transaction and {kinds['rules_engine']} fulfilment cases found; "
                  f"{len(result['accepted'])} new in the queue, {len(result['already_known'])} already there",
                  highlight=False)

    _run(go)


@app.command("export-labels")
def export_labels(out_dir: Path = typer.Option(..., "--out", help="Folder to write reports and outcomes to.")) -> None:
    """Write resolved cases as the data contract's reports and outcomes tables, for `docket train`."""

    def go() -> None:
        from features.io import write_tables
        from serving.ledger import Ledger
        from serving.penalty import load_policy
        from serving.queue import Queue
        from serving.queue_policy import load_queue_policy

        engine = _store()
        queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
        outcomes = queue.export_outcomes()
        reports = queue.export_reports()
        reports = reports[reports["report_id"].isin(outcomes["report_id"])].reset_index(drop=True)
        write_tables({"reports": reports, "outcomes": outcomes}, out_dir)
        err.print(f"wrote {len(outcomes):,} outcomes (and their reports) to {out_dir}", highlight=False)

    _run(go)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
