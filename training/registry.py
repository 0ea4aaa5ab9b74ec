"""Thin MLflow glue: log a bundle, register it, move aliases, load by alias."""
from __future__ import annotations

from dataclasses import dataclass

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from training.registered_models import BundleModel, FraudBundle, SeverityBundle


class ModelNotFound(LookupError):
    """No model version carries the requested alias (train first)."""


@dataclass(frozen=True)
class Loaded:
    name: str
    version: str
    bundle: SeverityBundle | FraudBundle


def log_and_register(bundle, name: str, artifact_name: str, example: pd.DataFrame) -> str:
    """Log the bundle as a pyfunc in the active run and register it; returns the new version."""
    info = mlflow.pyfunc.log_model(
        name=artifact_name,
        python_model=BundleModel(bundle),
        registered_model_name=name,
        input_example=_plain(example),
        pip_requirements=_requirements(),
    )
    return str(info.registered_model_version)


def _plain(example: pd.DataFrame) -> pd.DataFrame:
    """The example with categoricals as strings: what a caller of the pyfunc sends."""
    return example.astype({c: str for c in example.columns if isinstance(example[c].dtype, pd.CategoricalDtype)})


def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


def load(name: str, alias: str) -> Loaded:
    """The bundle behind `models:/name@alias` and its version number."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, alias).version
    except MlflowException as err:
        raise ModelNotFound(f"no version of model '{name}' has alias '{alias}'") from err
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return Loaded(name=name, version=str(version), bundle=model.unwrap_python_model().bundle)


def version_of(name: str, alias: str) -> str:
    """The version `models:/name@alias` points at, without loading anything (raises ModelNotFound if none).

    Only a missing model or alias counts as "not found"; a registry that cannot be
    reached raises its own error, so nobody is told to train when the server is down.
    """
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise ModelNotFound(f"no version of model '{name}' has alias '{alias}'") from err
        raise


def load_version(name: str, version: str) -> Loaded:
    """The bundle registered as `models:/name/version`."""
    model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    return Loaded(name=name, version=str(version), bundle=model.unwrap_python_model().bundle)


def has_alias(name: str, alias: str) -> bool:
    try:
        MlflowClient().get_model_version_by_alias(name, alias)
        return True
    except MlflowException:
        return False


def _requirements() -> list[str]:
    """Pin the libraries the pickled bundle needs, at the versions that trained it."""
    import lightgbm
    import numpy
    import scipy
    import sklearn

    pins = {"lightgbm": lightgbm, "pandas": pd, "numpy": numpy, "scikit-learn": sklearn, "scipy": scipy,
            "mlflow": mlflow}
    return [f"{name}=={mod.__version__}" for name, mod in pins.items()]
