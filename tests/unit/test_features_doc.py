"""docs/features.md is generated from the feature catalogue and cannot drift from it."""
from features.build import FEATURES
from features.features_doc import DOC_PATH, render_markdown


def test_committed_features_page_matches_the_code():
    assert DOC_PATH.read_text(encoding="utf-8") == render_markdown(), "run: python -m features.features_doc"


def test_every_feature_is_listed_once_with_its_meaning():
    page = render_markdown()
    for catalogue in FEATURES.values():
        for name, meaning in catalogue.items():
            assert f"| `{name}` |" in page and meaning in page
