"""The sklearn fallback: the fitted pipeline's own predict_proba, for pipelines that do not
compile into a :class:`~flightdelay.serving.runtime.scorer.LinearScorer`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.estimator import CAT, PREPROCESS
from flightdelay.core.model_code import category_string
from flightdelay.serving.runtime.scorer import Columns, is_missing


@dataclass(frozen=True)
class SklearnScorer:
    """The fitted pipeline's own predict_proba on a DataFrame.

    Categoricals are passed as training saw them (`category_string`: an integer as its digits);
    a missing one (None or NaN) as the marker the encoder learned for "missing" (None or NaN:
    sklearn treats the two as different categories).
    """

    pipeline: Any
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    kind: str = field(default="sklearn")

    def score_columns(self, columns: Columns, n: int) -> np.ndarray:
        """Probabilities for `n` records given as one sequence per feature column."""
        frame = pd.DataFrame(index=range(n))
        markers = missing_markers(self.pipeline, self.categorical)
        for col in self.categorical:
            marker = markers.get(col)
            values = [marker if is_missing(v) else category_string(v) for v in columns[col]]
            frame[col] = pd.Series(values, dtype=object)
        for col in self.numeric:
            values = [np.nan if v is None else v for v in columns[col]]
            frame[col] = np.asarray(values, dtype=np.float64)
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)

    def score_list(self, columns: Columns, n: int) -> list[float]:
        """`score_columns` as a list."""
        return self.score_columns(columns, n).tolist()  # type: ignore[no-any-return]

    def score_one(self, record: Mapping[str, Any]) -> tuple[float, dict[str, list[str]]]:
        """One record's probability; unknown categories are not reported by this scorer."""
        cols = {c: [record[c]] for c in (*self.categorical, *self.numeric)}
        return float(self.score_columns(cols, 1)[0]), {}

    def unknown_categories(self, columns: Columns) -> dict[str, list[str]]:
        """Always empty: the fallback does not look into the encoder."""
        return {}


def missing_markers(pipeline: Any, categorical: Sequence[str]) -> dict[str, Any]:
    """Per categorical column, the value its one-hot encoder learned as "missing" (None or NaN)."""
    try:
        pre = pipeline.named_steps[PREPROCESS]
        enc, cols = next((e, c) for n, e, c in pre.transformers_ if n == CAT)
        out: dict[str, Any] = {}
        for col, cats in zip(cols, enc.categories_, strict=True):
            missing = [c for c in cats if is_missing(c)]
            out[col] = missing[0] if missing else None
        return out
    except (AttributeError, KeyError, StopIteration, TypeError, ValueError):
        return {c: None for c in categorical}
