"""The generated contract page cannot drift from the contract."""
from __future__ import annotations

from features.contract import TABLES
from features.contract_doc import DOC_PATH, main, render_markdown
from features.vocabulary import CATEGORY_FAMILY


def test_committed_contract_doc_matches_render():
    assert DOC_PATH.read_text(encoding="utf-8") == render_markdown(), (
        "docs/data-contract.md is stale: run `python -m features.contract_doc`"
    )


def test_contract_doc_covers_every_table_column_and_category():
    page = render_markdown()
    for table in TABLES.values():
        assert f"## {table.name}\n" in page
        for column in table.column_names:
            assert f"| `{column}` |" in page
    for category, family in CATEGORY_FAMILY.items():
        assert f"| `{category}` | `{family}` |" in page


def test_contract_doc_main_writes_to_given_path(tmp_path):
    path = main([str(tmp_path / "contract.md")])
    assert path.read_text(encoding="utf-8") == render_markdown()
