"""The model: an sklearn Pipeline of one-hot + impute/scale + logistic regression.

The step names and shapes here are what :mod:`flightdelay.serving.runtime.compile` compiles
for serving.
"""

from __future__ import annotations

from collections.abc import Sequence

from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from flightdelay.core.config import VariantParams
from flightdelay.core.model_code import coerce_frame

__all__ = ["CAT", "CLASSIFIER", "NUM", "PREPROCESS", "build_pipeline", "coerce_frame"]

PREPROCESS = "preprocess"
CLASSIFIER = "classifier"
CAT = "cat"
NUM = "num"


def build_pipeline(
    categorical: Sequence[str], numeric: Sequence[str], variant: VariantParams, random_state: int
) -> Pipeline:
    """An unfitted Pipeline: categoricals one-hot encoded (unknown ignored), numerics
    median-imputed and standardised, then a logistic regression with the variant's knobs."""
    preprocess = ColumnTransformer(
        [
            (CAT, OneHotEncoder(handle_unknown="ignore"), list(categorical)),
            (
                NUM,
                Pipeline(
                    [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
                ),
                list(numeric),
            ),
        ],
        remainder="drop",
    )
    clf = LogisticRegression(
        C=variant.C,
        solver=variant.solver,
        max_iter=variant.max_iter,
        tol=variant.tol,
        class_weight=variant.class_weight,
        random_state=random_state,
        **_penalty_kwargs(variant),
    )
    return Pipeline([(PREPROCESS, preprocess), (CLASSIFIER, clf)])


def _penalty_kwargs(variant: VariantParams) -> dict[str, object]:
    # sklearn >= 1.8 deprecates `penalty` in favour of l1_ratio (0 = L2, 1 = L1).
    if variant.penalty == "elasticnet":
        return {"l1_ratio": variant.l1_ratio if variant.l1_ratio is not None else 0.5}
    if variant.penalty is None:
        return {"l1_ratio": 0.0, "C": float("inf")}
    return {"l1_ratio": 1.0 if variant.penalty == "l1" else 0.0}
