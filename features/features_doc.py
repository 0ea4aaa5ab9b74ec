"""The feature catalogue as a markdown page, rendered from `features.build.FEATURES`.

`docs/features.md` is generated, never edited by hand: a test compares it with
`render_markdown()`, so the list cannot drift from the code that computes the
features. Regenerate with `python -m features.features_doc`.
"""
from __future__ import annotations

from pathlib import Path

from features.build import CATEGORICALS, FEATURES

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "features.md"

INTRO = """\
# Features

<!-- Generated from features/build.py by `python -m features.features_doc`; do not edit by hand. -->

Every feature the models see, with its meaning. All history features of a row at time t
use only events strictly before t (whole seconds) and labels only once they were known:
review outcomes after `resolved_at`, chargebacks after `fraud_known_at`, violations after
`decided_at`. Training and serving compute them with the same functions
(`features.build.report_features`, `features.build.order_features`).
Categorical features use the fixed vocabulary; a missing value (no reporter, no order,
nothing to divide by) is left missing for the model rather than filled in.
"""

TITLES = {
    "report": ("Report features", "per report, at the time it was filed: validity, severity and report fraud models"),
    "order": ("Order features", "per order, at the time it was placed: transaction fraud model and monitoring"),
}


def render_markdown() -> str:
    parts = [INTRO]
    for kind, catalogue in FEATURES.items():
        title, scope = TITLES[kind]
        parts.append(f"\n## {title}\n\n{len(catalogue)} features, {scope}.\n\n| feature | kind | meaning |\n|---|---|---|")
        for name, meaning in catalogue.items():
            parts.append(f"| `{name}` | {'categorical' if name in CATEGORICALS else 'number'} | {meaning} |")
    return "\n".join(parts) + "\n"


def main() -> None:
    DOC_PATH.write_text(render_markdown(), encoding="utf-8")


if __name__ == "__main__":
    main()
