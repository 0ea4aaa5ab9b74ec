"""The data contract as a markdown page, rendered from the contract itself.

`docs/data-contract.md` is generated, never edited by hand: a test compares it
with `render_markdown()`, so the page cannot drift from the code that enforces
it. Regenerate with `python -m features.contract_doc`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from features import vocabulary as V
from features.contract import ID_MAX, NAME_MAX, REFERENCES, TABLES, TASKS, TEXT_MAX, TIME_RANGE, Column, Table
from features.io import FORMATS, free_text_columns
from features.validate import BOOL_STRINGS, CONSISTENCY_RULES, LINKED_ORDERS, RANGES

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "data-contract.md"

INTRO = """\
# Data contract

<!-- Generated from features/contract.py by `python -m features.contract_doc`; do not edit by hand. -->

Every raw table Docket reads, column by column. A data folder holds one file per
table, `<table>.parquet` or `<table>.csv` (never both). Every load is validated
against this contract (`features.validate`): anything that does not match stops
the load with one error that lists every problem found, each naming the table,
the column, the number of rows and a few example values or ids.

How values are read:

- Timestamps are UTC. A timestamp without a zone is read as UTC; a timestamp with
  a zone is converted to UTC. Text timestamps must be ISO-8601 (a date, or a date and
  time with an optional zone; nothing relative such as `now`), and the API takes only
  times from {earliest} to before {latest}.
- Text has a maximum length in characters: {id_max} for identifiers (every `str`
  column unless its type says otherwise), {text_max} for free text (descriptions,
  notes, an appeal's why), {name_max} for a person named in an API request (`actor`).
- Booleans are true/false or the numbers 0/1; in text only {bools}.
- Whole numbers are integers (in text: digits only); numbers must be finite.
- Text columns hold text only: a number is not silently turned into an id.
- Identifiers and category values are matched exactly; any other spelling is rejected.
- A column that is not in the contract is rejected, not ignored.
- CSV files are read as text and typed by validation. An empty field is a missing
  value, except in free-text columns ({free_text}), where it is empty text.
"""


def render_markdown() -> str:
    """The whole contract page."""
    sections = [_intro(), _overview(), *(_table_section(t) for t in TABLES.values()), _other_rules(), _vocabulary()]
    return "\n".join(sections)


def _intro() -> str:
    free_text = [f"`{t.name}.{c}`" for t in TABLES.values() for c in free_text_columns(t)]
    return INTRO.format(bools=", ".join(f"`{s}`" for s in BOOL_STRINGS), free_text=", ".join(free_text),
                        earliest=TIME_RANGE[0].date().isoformat(), latest=TIME_RANGE[1].date().isoformat(),
                        id_max=ID_MAX, text_max=f"{TEXT_MAX:,}", name_max=NAME_MAX)


def _overview() -> str:
    rows = [
        f"| [`{t.name}`](#{t.name}) | {_needed_by(t)} | {_code(t.key) if t.key else ''} | {_cell(t.doc)} |"
        for t in TABLES.values()
    ]
    tasks = [f"| {task.name} | {', '.join(f'`{n}`' for n in task.tables)} | {task.commands} |" for task in TASKS]
    return "\n".join(["## What a data set is for", "",
                      "A data set may hold only some tables: `docket validate` accepts it when it serves at least one",
                      "of these uses, and names the uses it serves and what the others lack. A table a use does not",
                      "need counts as empty.", "",
                      "| use | needs | commands |", "|---|---|---|", *tasks, "",
                      "## Tables", "", "| table | needed by | key | holds |", "|---|---|---|---|", *rows, ""])


def _needed_by(table: Table) -> str:
    return ", ".join(task.name for task in TASKS if table.name in task.tables) or "nothing (optional)"


def _table_section(table: Table) -> str:
    lines = [f"## {table.name}", "", table.doc, ""]
    lines.append(f"- File: {' or '.join(f'`{table.name}.{fmt}`' for fmt in FORMATS)}.")
    lines.append(f"- Needed by: {_needed_by(table)}.")
    if table.key:
        lines.append(f"- Key: `{table.key}` (unique).")
    lines += ["", "| column | type | nullable | allowed values | meaning | if the file leaves it out |",
              "|---|---|---|---|---|---|"]
    lines += [_column_row(c) for c in table.columns]
    rules = _rules(table)
    if rules:
        lines += ["", "Rules:", "", *(f"- {r}" for r in rules)]
    links = _links(table)
    if links:
        lines += ["", "References:", "", *(f"- {r}" for r in links)]
    return "\n".join([*lines, ""])


def _column_row(column: Column) -> str:
    allowed = ", ".join(f"`{v}`" for v in column.allowed) if column.allowed else ""
    kind = f"{column.kind} (max {column.max_length:,})" if column.max_length else column.kind
    absent = _cell(column.absent) if column.absent else "required"
    return (f"| `{column.name}` | {kind} | {'yes' if column.nullable else 'no'} | {allowed} | {_cell(column.doc)} "
            f"| {absent} |")


def _rules(table: Table) -> list[str]:
    """Within-row rules: time order, flags and numeric bounds."""
    rules = [f"`{earlier}` <= `{later}` where both are set." for earlier, later in table.time_order]
    rules += [f"`{flag}` is true exactly when `{time}` is set." for flag, time in table.flag_times]
    rules += [f"`{r.column}` {r.describe()}." for r in RANGES if r.table == table.name]
    return rules


def _links(table: Table) -> list[str]:
    """Rules that reach into other tables, listed under the table that holds the pointer."""
    links = [
        f"`{column}` -> `{ref_table}.{ref_key}` (every non-empty value must exist there)."
        for name, column, ref_table, ref_key in REFERENCES
        if name == table.name
    ]
    links += [f"{rule.describe()}." for rule in LINKED_ORDERS if rule.table == table.name]
    return links


def _other_rules() -> str:
    return "\n".join(["## Other rules", "", *(f"- {r}" for r in CONSISTENCY_RULES), ""])


def _vocabulary() -> str:
    lines = ["## Vocabulary", "", "Categories and the issue family each belongs to.", ""]
    lines += ["| category | family |", "|---|---|"]
    lines += [f"| `{category}` | `{family}` |" for category, family in V.CATEGORY_FAMILY.items()]
    lines += ["", "Other closed sets:", ""]
    for name, values in (
        ("roles", V.ROLES),
        ("reporter types", V.REPORTER_TYPES),
        ("channels", V.CHANNELS),
        ("families", V.FAMILIES),
        ("severities (lowest first)", V.SEVERITIES),
        ("actions", V.ACTIONS),
    ):
        lines.append(f"- {name.capitalize()}: {', '.join(f'`{v}`' for v in values)}.")
    return "\n".join([*lines, ""])


def _code(text: str) -> str:
    return f"`{text}`"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def main(argv: list[str] | None = None) -> Path:
    """Write the page (to `docs/data-contract.md` unless a path is given)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DOC_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(), encoding="utf-8")
    return path


if __name__ == "__main__":
    main()
