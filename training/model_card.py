"""The model card logged with every training run: models/model_card.md filled with the run's figures."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from config import settings as S
from training.evaluation import Evaluation

TEMPLATE = Path(__file__).resolve().parent.parent / "models" / "model_card.md"
HEADLINE: dict[str, tuple[str, ...]] = {
    "fraud_reports": ("average_precision", "share_of_oracle_average_precision", "precision_at_k",
                      "card_precision_at_k", "ece"),
    "fraud_orders": ("average_precision", "share_of_oracle_average_precision", "precision_at_k",
                     "card_precision_at_k", "ece"),
    "validity": ("roc_auc", "average_precision", "ece"),
    "severity": ("macro_f1", "quadratic_kappa", "top_class_ece"),
}


def _fmt(value) -> str:
    return "" if value is None or pd.isna(value) else f"{value:.3f}"


def _markdown(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return head + body


def performance_markdown(report: dict) -> str:
    parts = []
    for task, metrics in HEADLINE.items():
        rankers = report.get(task, {}).get("rankers")
        if not rankers:
            continue
        rows = [{"ranker": name, **{m: _fmt(v.get(m)) for m in metrics}} for name, v in rankers.items()]
        k = report[task].get("k_per_day")
        note = f" (k = {k} per day)" if k else ""
        parts.append(f"**{task}**{note}\n\n" + _markdown(rows, ["ranker", *metrics]))
    return "\n".join(parts) or "No task could be evaluated on this data."


def queue_markdown(report: dict) -> str:
    rows = report.get("queue", {}).get("urgent", [])
    if not rows:
        return "Not replayed (no queue policy given)."
    table = [{"capacity": f"{r['capacity']:.0%}", "ordering": r["ordering"],
              "mean hours": _fmt(r["urgent_mean_minutes"] / 60), "p90 hours": _fmt(r["urgent_p90_minutes"] / 60),
              "x sooner than FIFO": _fmt(r["urgent_speedup_vs_fifo"]), "goals missed (valid)": _fmt(r["goal_missed_share"])}
             for r in rows]
    return _markdown(table, list(table[0]))


def _search(search: dict | None) -> str:
    if not search:
        return "the defaults (no search)"
    chosen = search["chosen"]
    if chosen == "defaults":
        return f"the defaults ({search['reason']})"
    return "`" + ", ".join(f"{k}={v}" for k, v in chosen.items()) + f"` ({search['reason']})"


def render(ev: Evaluation, versions: dict[str, str], fingerprint: str, run_id: str) -> str:
    w, rows = ev.windows, ev.report["rows"]
    return TEMPLATE.read_text(encoding="utf-8").format(
        severity_version=versions.get(S.SEVERITY_MODEL, "-"), fraud_version=versions.get(S.FRAUD_MODEL, "-"),
        run_id=run_id, fingerprint=fingerprint,
        train_window=f"{w.train_start:%Y-%m-%d} .. {w.train_end:%Y-%m-%d}",
        test_window=f"{w.test_start:%Y-%m-%d} .. {w.test_end:%Y-%m-%d}", label_delay_days=w.label_delay_days,
        **{k: f"{rows.get(k, 0):,}" for k in ("reports_train", "reports_calibration", "reports_test", "orders_train",
                                                "orders_calibration", "orders_test")},
        **{f"search_{task}": _search(ev.report.get(task, {}).get("search")) for task in ("fraud_reports", "fraud_orders")},
        refit=("The order model was refitted on its calibration rows too after calibrating, so its freshest "
               "labels are not lost to it." if ev.order_model is not None and ev.order_model.refit else ""),
        performance=performance_markdown(ev.report), queue=queue_markdown(ev.report),
    )
