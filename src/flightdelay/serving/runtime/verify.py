"""Step 3 of a load: turn the downloaded artifacts into a checked scorer and request schemas.

The compiled linear scorer is used only when it matches the pipeline's `predict_proba` within
:data:`TOLERANCE` on the input example and random probe rows (batch and single-record paths);
otherwise the sklearn fallback serves, and the reason is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.estimator import CAT, PREPROCESS
from flightdelay.core.model_code import category_string
from flightdelay.serving.runtime.compile import NotCompilable, compile_pipeline
from flightdelay.serving.runtime.fallback import SklearnScorer
from flightdelay.serving.runtime.scorer import LinearScorer, Scorer, is_missing
from flightdelay.serving.schemas import ModelWording, RequestSchemas, build_request_schemas

TOLERANCE = 1e-9


@dataclass(frozen=True)
class Verified:
    """A model ready to serve: its scorer (and why it is the fallback), schemas and example."""

    scorer: Scorer
    fallback_reason: str | None
    schemas: RequestSchemas
    inputs: list[tuple[str, str]]  # (column, MLflow type) from the signature
    example: dict[str, Any] | None


def probe_columns(
    scorer: LinearScorer, example: pd.DataFrame | None, rows: int, seed: int = 0
) -> dict[str, list[Any]]:
    """Records to check a compiled scorer on: the input example plus random rows mixing known
    and unseen categories, missing values and extreme numerics."""
    rng = np.random.default_rng(seed)
    cols: dict[str, list[Any]] = {c: [] for c in (*scorer.categorical, *scorer.numeric)}
    if example is not None and len(example):
        for c in cols:
            cols[c] += [None if is_missing(v) else v for v in example[c].tolist()]
    for col, weights in zip(scorer.categorical, scorer.cat_weights, strict=True):
        choices = [*weights, None, "__never_seen__"]
        cols[col] += [choices[i] for i in rng.integers(0, len(choices), rows)]
    for j, col in enumerate(scorer.numeric):
        centre = scorer.num_fill[j]
        values = centre + rng.normal(scale=abs(centre) + 1.0, size=rows)
        cols[col] += [
            None if m else float(v) for v, m in zip(values, rng.random(rows) < 0.15, strict=True)
        ]
    return cols


def worst_difference(linear: LinearScorer, reference: Scorer, cols: dict[str, list[Any]]) -> float:
    """The largest |linear - reference| over `cols`, batch and one-record-at-a-time paths."""
    n = len(next(iter(cols.values())))
    expected = reference.score_columns(cols, n)
    got = linear.score_columns(cols, n)
    names = (*linear.categorical, *linear.numeric)
    one_by_one = [linear.score_one({c: cols[c][i] for c in names})[0] for i in range(n)]
    return float(max(np.max(np.abs(expected - got)), np.max(np.abs(expected - one_by_one))))


def build_scorer(
    pipeline: Any, example: pd.DataFrame | None, categorical: Sequence[str], numeric: Sequence[str]
) -> tuple[Scorer, str | None]:
    """The linear scorer when the pipeline compiles and matches predict_proba within 1e-9,
    else the sklearn fallback. Returns (scorer, reason for the fallback or None); raises
    ValueError when the pipeline's columns are not `categorical` and `numeric`."""
    fallback = SklearnScorer(pipeline, tuple(categorical), tuple(numeric))
    try:
        linear = compile_pipeline(pipeline)
    except NotCompilable as exc:
        return fallback, str(exc)
    if set(linear.categorical) != set(categorical) or set(linear.numeric) != set(numeric):
        raise ValueError("the pipeline's columns differ from the signature's")
    worst = worst_difference(linear, fallback, probe_columns(linear, example, rows=256))
    if not worst <= TOLERANCE:
        return fallback, f"compiled scorer differs from predict_proba by {worst:.2e}"
    return linear, None


def signature_inputs(signature: Any) -> list[tuple[str, str]]:
    """(column, MLflow type name) for each input of an MLflow signature."""
    return [
        (c.name, str(c.type.name if hasattr(c.type, "name") else c.type))
        for c in signature.inputs.inputs
    ]


def nullable_categoricals(pipeline: Any, categorical: list[str]) -> set[str]:
    """Categoricals whose encoder learned a missing category (so null is meaningful); all of
    them when the encoder cannot be inspected."""
    try:
        pre = pipeline.named_steps[PREPROCESS]
        enc, cols = next((e, c) for n, e, c in pre.transformers_ if n == CAT)
        return {
            col
            for col, cats in zip(cols, enc.categories_, strict=True)
            if any(is_missing(c) for c in cats)
        }
    except Exception:
        return set(categorical)


def first_record(frame: Any, categorical: Sequence[str] = ()) -> dict[str, Any] | None:
    """The first row of the input example as JSON-ready values (None for missing; each of
    `categorical` as training saw it, `category_string`)."""
    if frame is None or len(frame) == 0:
        return None
    row = frame.iloc[0].to_dict()
    out = {str(k): (None if is_missing(v) else plain(v)) for k, v in row.items()}
    return {k: (category_string(v) if k in categorical else v) for k, v in out.items()}


def plain(value: Any) -> Any:
    """A numpy scalar as the Python value JSON takes (an integral float stays a float)."""
    return value.item() if isinstance(value, np.generic) else value


def feature_lists(
    inputs: list[tuple[str, str]], config: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """(categorical, numeric) columns: the model_config's lists (how training saw them; an
    integer-coded categorical has a numeric signature type), else by signature type."""
    names = [n for n, _ in inputs]
    if "categorical" in config or "numeric" in config:
        categorical = [str(c) for c in config.get("categorical") or []]
        numeric = [str(c) for c in config.get("numeric") or []]
        if sorted(categorical + numeric) != sorted(names):
            raise ValueError(
                f"model_config columns {categorical + numeric} differ from the signature's {names}"
            )
        return categorical, numeric
    return [n for n, t in inputs if t == "string"], [n for n, t in inputs if t != "string"]


def verify(
    pipeline: Any,
    inputs: list[tuple[str, str]],
    example_df: Any,
    max_batch: int,
    config: dict[str, Any] | None = None,
    name: str = "model",
) -> Verified:
    """Build and check the scorer and request schemas; raises (ValueError, ...) on a model that
    must not serve: columns that differ from the signature, an out-of-range test prediction."""
    config = config or {}
    # the fallback scores these columns; a compiled scorer's were checked against them
    categorical, numeric = feature_lists(inputs, config)
    scorer, reason = build_scorer(pipeline, example_df, categorical, numeric)
    nullable = nullable_categoricals(pipeline, categorical)
    example = first_record(example_df, categorical)
    wording = ModelWording.of(config, name)
    schemas = build_request_schemas(categorical, numeric, nullable, max_batch, example, wording)
    if example:
        check = scorer.score_columns({k: [v] for k, v in example.items()}, 1)
        if not (0.0 <= float(check[0]) <= 1.0):  # False for NaN too
            raise ValueError(f"test prediction out of range: {check}")
    return Verified(scorer, reason, schemas, inputs, example)
