"""Reading and writing the raw tables of a data folder.

A data folder holds one file per contract table, `<table>.parquet` or
`<table>.csv`. Parquet is what Docket writes; CSV is accepted so a feed can be
dropped in by hand. Every load goes through `features.validate`, so callers
only ever see frames that match the contract, or one `ContractError` listing
everything wrong, including files that could not be read at all.

CSV is read as text and typed by validation, not by pandas' guessing: an empty
field is a missing value, except in free-text columns (non-nullable text that
is neither a key nor a reference, such as `reports.description`) where CSV
cannot tell "empty" from "missing" and the contract allows empty text.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from features.contract import REFERENCES, TABLES, Table
from features.validate import ContractError, Problem, required_tables, validate_tables

FORMATS: tuple[str, ...] = ("parquet", "csv")


def load_tables(data_dir: str | Path, require: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """Read and validate every contract table in `data_dir`; `require` as in `validate_tables`.

    Raises FileNotFoundError when the folder does not exist or holds no table
    file (a wrong path, not bad data), and ContractError for everything else.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data folder {folder} does not exist")
    files = table_files(folder)
    if not files:
        raise FileNotFoundError(
            f"data folder {folder} holds no tables (expected <table>.parquet or <table>.csv for: {', '.join(TABLES)})"
        )
    problems: list[Problem] = []
    raw: dict[str, pd.DataFrame] = {}
    for name, paths in files.items():
        if len(paths) > 1:
            problems.append(Problem(name, None, 0, f"both {' and '.join(p.name for p in paths)} exist in {folder}; keep one"))
            continue
        try:
            raw[name] = read_table(paths[0], TABLES[name])
        except Exception as exc:  # noqa: BLE001 - any reader failure is a problem with that file
            problems.append(Problem(name, None, 0, f"cannot read {paths[0]}: {type(exc).__name__}: {_first_line(exc)}"))
    # A table whose file failed is already reported; do not report it as missing too.
    required = required_tables(require) - {name for name in files if name not in raw}
    try:
        frames = validate_tables(raw, require=required)
    except ContractError as err:
        raise ContractError([*problems, *err.problems]) from None
    if problems:
        raise ContractError(problems)
    return frames


def write_tables(tables: Mapping[str, pd.DataFrame], data_dir: str | Path) -> dict[str, Path]:
    """Write each table as `<table>.parquet` in `data_dir` (created if needed); returns the paths.

    Each file is written beside its final name and then renamed, so an
    interrupted write never leaves a truncated Parquet file behind.
    Tables are written as given: validation happens when they are loaded.
    """
    unknown = sorted(set(tables) - set(TABLES))
    if unknown:
        raise ValueError(f"not contract tables: {', '.join(unknown)}")
    folder = Path(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in tables.items():
        path = folder / f"{name}.parquet"
        partial = path.with_name(path.name + ".partial")
        frame.to_parquet(partial, index=False)
        partial.replace(path)
        paths[name] = path
    return paths


def table_files(folder: Path) -> dict[str, list[Path]]:
    """The files present for each contract table, in contract order (tables without a file are left out)."""
    found = {name: [folder / f"{name}.{fmt}" for fmt in FORMATS] for name in TABLES}
    return {name: [p for p in paths if p.is_file()] for name, paths in found.items() if any(p.is_file() for p in paths)}


def read_table(path: Path, table: Table) -> pd.DataFrame:
    """Read one file as it is; types are validation's business."""
    if path.suffix == ".csv":
        return read_csv(path, table)
    return pd.read_parquet(path)


def read_csv(path: Path, table: Table) -> pd.DataFrame:
    """Read a CSV as text; empty fields become missing except in free-text columns."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    keep_empty = free_text_columns(table)
    for column in frame.columns:
        if column not in keep_empty:
            frame[column] = frame[column].mask(frame[column] == "")
    return frame


def free_text_columns(table: Table) -> tuple[str, ...]:
    """Text columns where an empty value is real data: non-nullable, and not an identifier (key or reference)."""
    identifiers = {table.key} | {column for t, column, _, _ in REFERENCES if t == table.name}
    return tuple(
        c.name for c in table.columns if c.kind == "str" and not c.nullable and c.name not in identifiers
    )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no details"
