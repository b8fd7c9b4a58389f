"""Compile a fitted `build_pipeline` pipeline into a :class:`LinearScorer`.

Any pipeline of another shape raises :class:`NotCompilable`; the verify step then serves it with
the sklearn fallback instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flightdelay.core.estimator import CAT, CLASSIFIER, NUM, PREPROCESS
from flightdelay.serving.runtime.scorer import LinearScorer, is_missing


class NotCompilable(Exception):
    """The pipeline is not of the shape the linear scorer understands."""


@dataclass(frozen=True)
class _Parts:
    """The fitted pieces of a compilable pipeline."""

    classifier: Any  # LogisticRegression
    encoder: Any  # OneHotEncoder
    cat_cols: list[str]
    imputer: Any  # SimpleImputer
    scaler: Any  # StandardScaler
    num_cols: list[str]


def _split_pipeline(pipeline: Any) -> tuple[Any, Any]:
    """(ColumnTransformer, binary LogisticRegression) of a preprocess + classifier Pipeline."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    steps = [n for n, _ in pipeline.steps] if isinstance(pipeline, Pipeline) else None
    if steps != [PREPROCESS, CLASSIFIER]:
        raise NotCompilable("not a preprocess + classifier Pipeline")
    pre, clf = pipeline.named_steps[PREPROCESS], pipeline.named_steps[CLASSIFIER]
    if not isinstance(pre, ColumnTransformer) or not isinstance(clf, LogisticRegression):
        raise NotCompilable("expected ColumnTransformer + LogisticRegression")
    if clf.coef_.shape[0] != 1 or list(clf.classes_) != [0, 1]:
        raise NotCompilable("only binary 0/1 logistic regression compiles")
    if pre.remainder != "drop":
        raise NotCompilable("ColumnTransformer remainder must be 'drop'")
    return pre, clf


def _check_encoder(enc: Any) -> None:
    from sklearn.preprocessing import OneHotEncoder

    if not isinstance(enc, OneHotEncoder) or enc.drop is not None or enc.handle_unknown != "ignore":
        raise NotCompilable("categoricals need OneHotEncoder(handle_unknown='ignore', drop=None)")
    if getattr(enc, "max_categories", None) or getattr(enc, "min_frequency", None):
        raise NotCompilable("infrequent-category grouping does not compile")


def _split_numeric(num: Any) -> tuple[Any, Any]:
    """(SimpleImputer, StandardScaler) of the numeric branch."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if not isinstance(num, Pipeline) or len(num.steps) != 2:
        raise NotCompilable("numerics need Pipeline(imputer, scaler)")
    imputer, scaler = num.steps[0][1], num.steps[1][1]
    if not isinstance(imputer, SimpleImputer) or imputer.add_indicator:
        raise NotCompilable("numerics need a SimpleImputer without indicator")
    if not isinstance(scaler, StandardScaler):
        raise NotCompilable("numerics need a StandardScaler")
    return imputer, scaler


def pipeline_parts(pipeline: Any) -> _Parts:
    """The pieces of a fitted pipeline built by `build_pipeline`; NotCompilable otherwise."""
    pre, clf = _split_pipeline(pipeline)
    transformers = {
        name: (est, cols) for name, est, cols in pre.transformers_ if name != "remainder"
    }
    if set(transformers) != {CAT, NUM}:
        raise NotCompilable(f"expected transformers {CAT!r} and {NUM!r}")
    enc, cat_cols = transformers[CAT]
    num, num_cols = transformers[NUM]
    _check_encoder(enc)  # an empty branch is left unfitted by sklearn: nothing to read from it
    imputer, scaler = _split_numeric(num)
    return _Parts(clf, enc, list(cat_cols), imputer, scaler, list(num_cols))


def _categories(parts: _Parts) -> list[Any]:
    """The encoder's learned categories per column ([] for an empty categorical branch)."""
    return list(parts.encoder.categories_) if parts.cat_cols else []


def _numeric_terms(parts: _Parts, num_coef: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(weights = coef / scale, bias shift = -sum(coef * mean / scale), imputer fill) of the
    numeric branch; empty arrays and 0 for an empty branch."""
    n_num = len(parts.num_cols)
    if not n_num:
        return np.zeros(0), 0.0, np.zeros(0)
    scaler = parts.scaler
    mean = scaler.mean_ if scaler.with_mean else np.zeros(n_num)
    scale = scaler.scale_ if scaler.with_std else np.ones(n_num)
    fill = np.asarray(parts.imputer.statistics_, dtype=np.float64)
    return num_coef / scale, -float(np.sum(num_coef * mean / scale)), fill


def _category_weights(categories: list[Any], coef: np.ndarray) -> list[dict[Any, float]]:
    """Per categorical column, {category: weight}; a learned missing category is keyed None,
    and a category of integer digits also by its int."""
    out: list[dict[Any, float]] = []
    offset = 0
    for cats in categories:
        weights = {
            (None if is_missing(c) else c): float(coef[offset + i]) for i, c in enumerate(cats)
        }
        # an integer in a request is the category of its digits (`category_string`, as in
        # training): keyed here too, so the lookup costs nothing (3 and "3" differ as keys)
        weights |= {int(str(c)): w for c, w in weights.items() if _integral(c)}
        out.append(weights)
        offset += len(cats)
    return out


def _integral(category: Any) -> bool:
    """Whether `category` is what `category_string` makes of an integer ("3", "-12")."""
    return (
        isinstance(category, str)
        and category.lstrip("-").isdigit()
        and category == str(int(category))
    )


def compile_pipeline(pipeline: Any) -> LinearScorer:
    """Extract the linear form of a fitted pipeline built by `build_pipeline`.

    Raises NotCompilable for any other shape (extra steps, other encoders, multiclass, ...).
    """
    parts = pipeline_parts(pipeline)
    coef = parts.classifier.coef_[0]
    categories = _categories(parts)
    n_cat = sum(len(c) for c in categories)
    if coef.shape[0] != n_cat + len(parts.num_cols):
        raise NotCompilable("coefficient count does not match the encoded columns")
    cat_weights = _category_weights(categories, coef)
    num_weights, shift, fill = _numeric_terms(parts, coef[n_cat:])
    bias = float(parts.classifier.intercept_[0]) + shift
    if not (np.isfinite(coef).all() and np.isfinite(num_weights).all() and np.isfinite(bias)):
        raise NotCompilable("non-finite weights")
    if not np.isfinite(fill).all():
        raise NotCompilable("non-finite imputer statistics")
    return LinearScorer(
        categorical=tuple(parts.cat_cols),
        numeric=tuple(parts.num_cols),
        cat_weights=tuple(cat_weights),
        num_fill=fill,
        num_weights=np.asarray(num_weights, dtype=np.float64),
        bias=bias,
    )
