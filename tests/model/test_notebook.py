"""notebooks/retraining.ipynb runs top to bottom on a small simulation, so it never goes stale."""
from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "retraining.ipynb"


def test_retraining_notebook_executes_and_shows_tables_plots_and_a_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKET_NOTEBOOK_REPORTS", "4000")
    monkeypatch.setenv("DOCKET_NOTEBOOK_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("DOCKET_DATA_DIR", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 4
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "registered" in text and "challenger" in text
    assert "tolerance" in text or "champion" in text  # the promotion decision's reason and checks
    assert any("What the models are for" in str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert (tmp_path / "mlflow.db").exists() and os.path.getsize(tmp_path / "mlflow.db") > 0
