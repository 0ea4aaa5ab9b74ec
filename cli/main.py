"""The `docket` command line: one command per stage, errors turned into exit codes here only."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import typer

from cli import bench as cli_bench
from cli import models as cli_models
from cli.support import DATA_HELP, FORCE_HELP, CliError, err, out, refuse_overwrite, steps
from cli.support import data_dir as _data_dir
from cli.support import run as _run
from config import settings as S

# rich_markup_mode=None: help texts are plain, so their "[default: ...]" is printed rather than read as markup.
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Docket: Trust & Safety triage and fraud scoring.")


@app.command()
def simulate(
    reports: int = typer.Option(50_000, "--reports", min=100, help="Number of reports to generate."),
    seed: int = typer.Option(7, "--seed", help="Random seed: same seed, same data."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder to write the Parquet tables to [default: DOCKET_DATA_DIR or ./data]."),
    days: int = typer.Option(365, "--days", min=30, help="Length of the simulated period in days."),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Generate a marketplace data set (accounts, orders, reports, enforcements, outcomes, truth)."""

    def go() -> None:
        from features.io import write_tables
        from simulator.simulate import SIMULATION_STEPS
        from simulator.simulate import simulate as run

        target = _data_dir(out_dir)
        refuse_overwrite(target, force)
        start = time.perf_counter()
        with steps("simulate", list(SIMULATION_STEPS)) as advance:
            tables = run(reports, seed=seed, days=days, on_step=advance)
        write_tables(tables, target)
        summary = ", ".join(f"{len(df):,} {name}" for name, df in tables.items())
        err.print(f"wrote {summary} to {target} in {time.perf_counter() - start:.1f}s", highlight=False)

    _run(go)


@app.command()
def validate(data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Check a data set against the data contract and say what it can be used for; exit 2 with every problem
    listed if it fails, or if it serves no task (accounts and orders alone serve order fraud evaluation)."""

    def go() -> None:
        from features.contract import tasks_served
        from features.io import load_tables

        tables = load_tables(_data_dir(data), require=["accounts"])
        served, lacking = tasks_served(set(tables))
        err.print("valid: " + ", ".join(f"{len(df):,} {n}" for n, df in tables.items()), highlight=False)
        for task, missing in lacking.items():
            err.print(f"not for {task}: needs {', '.join(missing)}", highlight=False)
        if not served:
            raise CliError("the data serves no task: add the tables one of them needs (see docs/data-contract.md)")
        err.print("serves: " + "; ".join(f"{t.name} ({t.commands.replace('`', '')})" for t in served), highlight=False)

    _run(go)


@app.command()
def features(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    out_file: Path | None = typer.Option(None, "--out", help="Write the report features to this Parquet file."),
) -> None:
    """Build point-in-time features for every report and order and say how long it took."""

    def go() -> None:
        from features.build import order_features, report_features
        from features.history import History
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


keys_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="API keys: stored hashed, shown once.")
app.add_typer(keys_app, name="keys")


def _store():
    from serving.store.db import make_engine, migrate

    engine = make_engine(S.Settings.from_env().database_url)
    migrate(engine)
    return engine


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="intake, investigator or admin."),
    expires_in: str | None = typer.Option(None, "--expires-in",
                                          help="Lifetime, e.g. 30d, 12h, 90m [default: until revoked]."),
) -> None:
    """Create a key and print it, and only it, on standard output (it is not shown again)."""

    def go() -> None:
        from serving.api.key_store import KeyError_, create_key, parse_duration

        try:
            now = _now()
            expires_at = now + parse_duration(expires_in) if expires_in is not None else None
            key = create_key(_store(), role, actor="cli", now=now, expires_at=expires_at)
        except KeyError_ as e:
            raise CliError(str(e)) from e
        print(key)

    _run(go)


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, role, created (when, by whom), expiry, revocation. Never a secret."""

    def go() -> None:
        from rich.table import Table

        from serving.api.key_store import list_keys

        table = Table("key id", "role", "created", "by", "expires", "revoked")
        for k in list_keys(_store()):
            table.add_row(k["key_id"], k["role"], k["created_at"], k["created_by"], k["expires_at"] or "never",
                          k["revoked_at"] or "-")
        out.print(table)

    _run(go)


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (after dk_, as `docket keys list` shows).")) -> None:
    """Revoke a key: every worker of a running service refuses it from its next request on."""

    def go() -> None:
        from serving.api.key_store import revoke_key
        from serving.enforcement.ledger import NotFoundError

        try:
            key = revoke_key(_store(), key_id, actor="cli", now=_now())
        except NotFoundError as e:
            raise CliError(str(e)) from e
        err.print(f"revoked {key['key_id']} ({key['role']}) at {key['revoked_at']}", highlight=False)

    _run(go)


@keys_app.command("bootstrap")
def keys_bootstrap() -> None:
    """On a fresh install (no admin key yet) create one admin key and print it once; otherwise do nothing."""

    def go() -> None:
        from serving.api.key_store import create_key, has_keys

        engine = _store()
        if has_keys(engine, "admin", now=_now()):
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

        from features.history import History
        from features.io import load_tables
        from policy.file import load_policy, load_queue_policy
        from serving.enforcement.ledger import Ledger
        from serving.queue.cases import Queue
        from serving.queue.intake import Triage
        from serving.queue.monitors import MonitorConfig, run_monitors
        from serving.scoring.runtime import load_scorer

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
def export_labels(out_dir: Path = typer.Option(..., "--out", help="Folder to write reports and outcomes to."),
                  force: bool = typer.Option(False, "--force", help=FORCE_HELP)) -> None:
    """Write resolved cases as the data contract's reports and outcomes tables, for `docket train`."""

    def go() -> None:
        from features.io import write_tables
        from policy.file import load_policy, load_queue_policy
        from serving.enforcement.ledger import Ledger
        from serving.queue.cases import Queue

        refuse_overwrite(out_dir, force)
        engine = _store()
        queue = Queue(engine, load_queue_policy(), Ledger(engine, load_policy()))
        outcomes = queue.export_outcomes()
        reports = queue.export_reports()
        reports = reports[reports["report_id"].isin(outcomes["report_id"])].reset_index(drop=True)
        write_tables({"reports": reports, "outcomes": outcomes}, out_dir)
        err.print(f"wrote {len(outcomes):,} outcomes (and their reports) to {out_dir}", highlight=False)

    _run(go)


IMPORT_STEPS = ["load the data set", "accounts", "orders", "outcomes", "enforcements", "queue unresolved reports",
                "resolved reports"]
IMPORT_NAMES = {"order_updates": "order facts", "reports": "resolved reports"}
KEY_COLUMNS = {"accounts": "account_id", "orders": "order_id", "reports": "report_id",
               "enforcements": "violation_id", "outcomes": "report_id"}


@app.command("import")
def import_data(data: Path | None = typer.Option(None, "--data", help=DATA_HELP)) -> None:
    """Load a data set into the store (DOCKET_DATABASE_URL), idempotently: what is already stored is skipped.

    Reports with an outcome are stored as resolved; the others go through intake, scored by the rules-only
    priority (the service rescores them with the models), each in an open case."""

    start = time.perf_counter()
    folder = _data_dir(data)
    if _said_already_imported(folder, start):  # before _run, which imports the model registry (seconds)
        return

    def go() -> None:
        from features.history import History
        from features.io import load_tables
        from policy.file import load_policy, load_queue_policy
        from serving.enforcement.ledger import Ledger
        from serving.input_checks import RequestError
        from serving.market.event_store import Market
        from serving.queue.cases import Queue
        from serving.queue.intake import Triage

        settings = S.Settings.from_env()
        if not folder.is_dir():  # before the store is created or migrated
            raise FileNotFoundError(f"data folder {folder} does not exist")
        engine = _store_or_error()
        policy = load_policy()
        market = Market(engine, policy)
        qp = load_queue_policy()
        triage = Triage(Queue(engine, qp, Ledger(engine, policy)), qp, settings.max_batch)
        with steps("import", IMPORT_STEPS) as advance:
            tables = load_tables(folder, require=["accounts"])
            advance("load")
            try:
                counts = market.import_tables(tables, actor="cli:import", now=_now(), triage=triage,
                                              history_factory=lambda: History.from_tables(market.tables()[1]),
                                              on_step=advance)
            except RequestError as e:
                raise CliError(_first_errors(e)) from e
        stored = ", ".join(f"{c['stored']:,} {IMPORT_NAMES.get(name, name)}" for name, c in counts.items())
        there = sum(c["already_there"] for c in counts.values())
        err.print(f"imported {folder} into {_where(engine)}: stored {stored}; {counts['reports']['queued']:,} "
                  f"unresolved reports queued (rules-only priority); {there:,} rows already there; "
                  f"{time.perf_counter() - start:.1f}s", highlight=False, soft_wrap=True)

    _run(go)


@app.command("export")
def export_data(out_dir: Path = typer.Option(..., "--out", help="Folder to write the contract's tables to."),
                force: bool = typer.Option(False, "--force", help=FORCE_HELP)) -> None:
    """Write what the store holds as the data contract's tables, for `docket train --data` and `docket evaluate
    --data`: the models learn from exactly what the service saw. Rows whose references do not resolve are left
    out (each table's count and why are printed), so the folder passes `docket validate`."""

    def go() -> None:
        from features.io import table_files, write_tables
        from features.validate import validate_tables
        from policy.file import load_policy
        from serving.market.event_store import Market, resolvable

        start = time.perf_counter()
        refuse_overwrite(out_dir, force)
        engine = _store_or_error()
        seq, tables = Market(engine, load_policy()).tables()
        tables, dropped = resolvable(tables)
        for table, rows, why in dropped:
            err.print(f"left out {rows:,} {table}: {why}", highlight=False, soft_wrap=True)
        validate_tables(tables, require=["accounts"])  # what train and evaluate will load must load
        written = write_tables(tables, out_dir)
        others = sorted(p.name for paths in table_files(out_dir).values() for p in paths if p not in written.values())
        if others:
            err.print(f"note: {out_dir} also holds {', '.join(others)} from before (not written by export)",
                      highlight=False, soft_wrap=True)
        summary = ", ".join(f"{len(frame):,} {name}" for name, frame in tables.items())
        err.print(f"wrote {summary} (the store up to seq {seq:,}) to {out_dir} in "
                  f"{time.perf_counter() - start:.1f}s", highlight=False, soft_wrap=True)

    _run(go)


def _store_or_error():
    """The migrated store, or a CliError naming what is wrong with its URL or server."""
    from serving.store.db import StoreError

    try:
        return _store()
    except StoreError as e:
        raise CliError(str(e)) from e


def _where(engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _first_errors(error, shown: int = 5) -> str:
    parts = [f"{e.field}: {e.message}" for e in error.errors[:shown]]
    more = len(error.errors) - shown
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _said_already_imported(folder: Path, start: float) -> bool:
    """If the store holds all of the data set in `folder`, say so and return True; False otherwise, and also
    when anything goes wrong on the way (the full import then runs, and reports it properly)."""
    try:
        if not folder.is_dir():
            return False
        from policy.file import load_policy
        from serving.market.event_store import Market

        engine = _store()
        known = _already_imported(Market(engine, load_policy()), folder)
    except Exception:  # noqa: BLE001 - a quick look only
        return False
    if known is None:
        return False
    err.print(f"already imported: {_where(engine)} holds every one of the data set's {known} "
              f"({time.perf_counter() - start:.1f}s)", highlight=False, soft_wrap=True)
    return True


def _already_imported(market, folder: Path) -> str | None:
    """A quick look before the full import: if the store holds every key of every table file in `folder`,
    what it holds ("7,672 accounts, ..."); None when anything is missing or a file cannot be read that
    simply (the full import then loads and validates the data set, and says what is wrong)."""
    import pandas as pd

    from features.io import table_files

    if not folder.is_dir():
        return None
    files = table_files(folder)
    if "accounts" not in files:
        return None
    keys = {}
    for name, column in KEY_COLUMNS.items():
        paths = files.get(name, [])
        if len(paths) > 1:
            return None
        if not paths:
            continue
        try:
            frame = pd.read_csv(paths[0], usecols=[column], dtype=str, keep_default_na=False) \
                if paths[0].suffix == ".csv" else pd.read_parquet(paths[0], columns=[column])
        except Exception:  # noqa: BLE001 - the full import reports it properly
            return None
        keys[name] = frame
    if "orders" in files:  # an order's facts too (one sent earlier through the API may lack some)
        try:
            keys["order_updates"] = _fact_keys(files["orders"][0])
        except Exception:  # noqa: BLE001
            return None
    if any(market.missing_keys(keys).values()):
        return None
    return ", ".join(f"{len(v):,} {'order facts' if k == 'order_updates' else k}" for k, v in keys.items())


def _fact_keys(path: Path):
    """(order_id, fact) for every fact time an orders file sets."""
    import pandas as pd

    from serving.market.events import ORDER_FACTS

    columns = ["order_id", *ORDER_FACTS.values()]
    frame = pd.read_csv(path, usecols=columns, dtype=str, keep_default_na=False).replace("", None) \
        if path.suffix == ".csv" else pd.read_parquet(path, columns=columns)
    return pd.concat([pd.DataFrame({"order_id": frame.loc[frame[column].notna(), "order_id"], "fact": fact})
                      for fact, column in ORDER_FACTS.items()], ignore_index=True)


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
