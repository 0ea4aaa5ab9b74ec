"""The champion run's documents for the models page: its model card and evaluation plots, fetched from MLflow.

Training logs both champion models, `model_card.md` and the `plots/*.png` figures in one run
(training/train.py), so the run of any serving version is the run. Only names MLflow lists under the run's
`plots/` are ever fetched: a request names a plot, never a path.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

CARD = "model_card.md"
PLOTS = "plots"


def run_of(model_versions: dict[str, str]) -> str | None:
    """The run that registered the serving versions (the first one's), or None if the registry cannot say."""
    for name, version in sorted(model_versions.items()):
        try:
            return MlflowClient().get_model_version(name, str(version)).run_id
        except MlflowException:
            continue
    return None


def _artifact(run_id: str, path: str) -> bytes | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return Path(MlflowClient().download_artifacts(run_id, path, tmp)).read_bytes()
    except (MlflowException, OSError):
        return None


def model_card(run_id: str) -> str | None:
    """The run's model card (markdown, shown as it is), or None if it has none."""
    found = _artifact(run_id, CARD)
    return found.decode("utf-8", errors="replace") if found is not None else None


def plot_names(run_id: str) -> list[str]:
    """The PNG file names logged under the run's plots/ folder, sorted."""
    try:
        listed = MlflowClient().list_artifacts(run_id, PLOTS)
    except MlflowException:
        return []
    return sorted(Path(a.path).name for a in listed if not a.is_dir and a.path.endswith(".png"))


def plot(run_id: str, name: str) -> bytes | None:
    """One plot's PNG bytes, only if `name` is one of the run's plots; None otherwise."""
    return _artifact(run_id, f"{PLOTS}/{name}") if name in plot_names(run_id) else None
