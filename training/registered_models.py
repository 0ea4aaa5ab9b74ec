"""The two registered models and their MLflow wrappers.

`docket-severity` holds the validity and severity classifiers, `docket-fraud`
the report-level and order-level fraud classifiers. Each is registered as an
MLflow pyfunc (so any MLflow tool can serve it), while Docket's own service
unwraps the bundle to reach LightGBM's contributions for the reasons.
"""
from __future__ import annotations

from dataclasses import dataclass

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features import vocabulary as V
from training.models import BinaryModel, MulticlassModel


@dataclass
class SeverityBundle:
    validity: BinaryModel
    severity: MulticlassModel

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({"p_valid": self.validity.predict_proba(X)}, index=X.index)
        probs = self.severity.predict_proba(X)
        for i, s in enumerate(V.SEVERITIES):
            out[f"p_severity_{s}"] = probs[:, i]
        return out


@dataclass
class FraudBundle:
    report: BinaryModel
    order: BinaryModel

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Fraud risk of reports, or of orders when given order features."""
        model = self.order if set(self.order.features) <= set(X.columns) else self.report
        return pd.DataFrame({"fraud_risk": model.predict_proba(X)}, index=X.index)


class BundleModel(mlflow.pyfunc.PythonModel):
    """pyfunc face of a bundle: feature frame in, probability frame out."""

    def __init__(self, bundle: SeverityBundle | FraudBundle):
        self.bundle = bundle

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.bundle.predict(model_input)


def severity_labels(severity: pd.Series) -> np.ndarray:
    """Severity names as class indices (-1 where missing)."""
    return severity.map({s: i for i, s in enumerate(V.SEVERITIES)}).fillna(-1).to_numpy(int)
