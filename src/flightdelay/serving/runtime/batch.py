"""The compiled scorer over large batches, column by column with numpy: what
:meth:`LinearScorer.score_columns` and :meth:`LinearScorer.unknown_categories` compute, in one
pass and without a Python-level loop per value (a category's weight is looked up by `map` in C,
an unknown one comes back as NaN, which also marks it for the warnings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flightdelay.serving.runtime.scorer import LinearScorer


def _category_terms(
    weights: dict[Any, float], values: Sequence[Any]
) -> tuple[np.ndarray, list[str]]:
    """(weight per value, sorted unknown values as text) of one categorical column.

    `weights.get` gives None for a value it does not know, and numpy makes None a NaN: an
    unknown category, or a missing one the encoder never learned; both weigh 0 (a learned
    missing category is a key, None, and weighs what it learned)."""
    w = np.array(list(map(weights.get, values)), dtype=np.float64)
    nan = np.isnan(w)
    if not nan.any():
        return w, []
    w[nan] = 0.0
    unseen = {str(values[i]) for i in np.flatnonzero(nan).tolist() if values[i] is not None}
    return w, sorted(unseen)


def score_batch(
    scorer: LinearScorer, columns: Mapping[str, Sequence[Any]], n: int
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """(probabilities, unknown categories per column) of `n` records given as columns."""
    z = np.full(n, scorer.bias, dtype=np.float64)
    unknown: dict[str, list[str]] = {}
    for col, weights in zip(scorer.categorical, scorer.cat_weights, strict=True):
        w, unseen = _category_terms(weights, columns[col])
        z += w
        if unseen:
            unknown[col] = unseen
    if scorer.numeric:
        # None becomes NaN in a float array: missing, imputed as in training
        x = np.array([columns[c] for c in scorer.numeric], dtype=np.float64)
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, scorer.num_fill[:, None], x)
        z += scorer.num_weights @ x
    return 1.0 / (1.0 + np.exp(-np.clip(z, -700.0, 700.0))), unknown  # no overflow warning
