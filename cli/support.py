"""What every `docket` command shares: consoles, the progress bar, and turning expected failures
into one readable line and exit code 2 (never a traceback)."""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from config import settings as S

err = Console(stderr=True)
out = Console()


DATA_HELP = "Folder with the tables, Parquet or CSV [default: DOCKET_DATA_DIR or ./data]."


def data_dir(data: Path | None) -> Path:
    return data or S.Settings.from_env().data_dir


class CliError(Exception):
    """A failure to report as one readable line and a non-zero exit."""


FORCE_HELP = "Overwrite the data set already in the folder."


def refuse_overwrite(folder: Path, force: bool) -> None:
    """Keep a data set already in `folder` (any of the contract's table files) unless `force`: CliError otherwise.

    A data set is what the store, the service and the champion were built from; `docket simulate` once wrote over
    ./data because `--out` was left out. Reports written from a data set (evaluate's, bench's) are not data sets and
    are simply rewritten."""
    from features.io import table_files

    if force or not folder.is_dir():
        return
    names = [p.name for paths in table_files(folder).values() for p in paths]
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise CliError(f"{folder} already holds a data set ({shown}); pass --force to overwrite it")


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


def run(fn: Callable[[], None]) -> None:
    """Call fn, mapping the project's expected failures to exit code 2 and a one-line message."""
    from features.validate import ContractError
    from training.registry import ModelNotFound
    from training.windows import WindowError

    try:
        fn()
    except ContractError as e:
        err.print(f"[red]error:[/red] invalid data: {len(e.problems)} problem(s)", highlight=False)
        for line in str(e).splitlines():
            err.print(f"  {line}", highlight=False, markup=False)
        raise typer.Exit(2)
    except (CliError, ModelNotFound, FileNotFoundError, WindowError) as e:
        err.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)  # one line, however narrow the terminal
        raise typer.Exit(2)
