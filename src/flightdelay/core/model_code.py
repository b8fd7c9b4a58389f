"""The logged MLflow model, as code: raw feature columns in, P(positive class) out.

MLflow "models from code": this file is stored with every model (`python_model=<this file>`)
and executed when the model loads, so it imports nothing from `flightdelay` and runs wherever
MLflow, pandas, numpy and skops are installed (`mlflow models serve`, `spark_udf`, a notebook).
The fitted sklearn Pipeline is stored beside it in skops format and loaded with the allow-list
below, which lives in this reviewed file, never in the artifact. The same :func:`coerce_frame`
prepares the training frame and every frame the model scores, so the registered model and the
service answer the same probability for the same raw row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

PIPELINE_ARTIFACT = "pipeline"

# Every type the skops file may contain besides what skops trusts by default (checked at save).
TRUSTED_TYPES = [
    "sklearn.compose._column_transformer._RemainderColsList",
    "numpy.dtype",
]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def category_string(value: Any) -> str | None:
    """How a categorical value is seen by the model: missing -> None, an integral number ->
    its integer digits (so 3, 3.0 and "3" are one category), anything else -> str(value)."""
    if _is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def coerce_frame(
    df: pd.DataFrame, categorical: Sequence[str], numeric: Sequence[str]
) -> pd.DataFrame:
    """The pipeline's input: categoricals as object strings (None for missing), numerics as
    float64 (NaN for missing), in a fixed column order. Raises KeyError for a missing column
    and ValueError for a non-numeric value in a numeric column."""
    out = pd.DataFrame(index=df.index)
    for col in categorical:
        values = [category_string(v) for v in df[col].tolist()]
        out[col] = pd.Series(values, index=df.index, dtype=object)
    for col in numeric:
        series = df[col]
        if series.dtype == object:
            series = series.map(lambda v: np.nan if _is_missing(v) else v)
        out[col] = pd.to_numeric(series, errors="raise").astype("float64")
    return out


def load_pipeline(path: str) -> Any:
    """The fitted sklearn Pipeline stored at `path` (skops), with the allow-list above."""
    import skops.io

    return skops.io.load(path, trusted=TRUSTED_TYPES)


def build_model() -> Any:
    """The pyfunc model object MLflow serves (defined here so importing this module is cheap)."""
    from mlflow.pyfunc.model import PythonModel

    class PositiveProbability(PythonModel):  # type: ignore[misc]
        """predict(frame) -> one probability of the positive class per row."""

        # No type hints on purpose: MLflow would turn them into a second, stricter schema.
        def load_context(self, context):  # type: ignore[no-untyped-def]
            config: Mapping[str, Any] = context.model_config or {}
            self.categorical = list(config.get("categorical", []))
            self.numeric = list(config.get("numeric", []))
            self.pipeline = load_pipeline(context.artifacts[PIPELINE_ARTIFACT])

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            frame = coerce_frame(pd.DataFrame(model_input), self.categorical, self.numeric)
            return self.pipeline.predict_proba(frame)[:, 1]

    return PositiveProbability()


# MLflow's models-from-code loader executes this file under a module name `code_model_<uuid>`:
# only then is the model declared, so `import flightdelay.core.model_code` has no side effect.
if __name__.startswith("code_model_"):
    from mlflow.models import set_model

    set_model(build_model())
