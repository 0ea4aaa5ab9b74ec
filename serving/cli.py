"""The `docket` command line: one command per stage, errors turned into exit codes here only."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from features import settings as S
from serving import cli_bench, cli_models
from serving.cli_support import DATA_HELP, CliError, err, steps
from serving.cli_support import data_dir as _data_dir
from serving.cli_support import run as _run

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Docket: Trust & Safety triage and fraud scoring.")


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


app.command()(cli_models.train)
app.command()(cli_models.evaluate)
app.command()(cli_models.promote)
app.command("bench")(cli_bench.bench)


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
