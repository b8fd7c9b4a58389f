"""The compiled scorer: a fitted pipeline as plain linear arithmetic.

A fitted `one-hot + impute/scale + logistic regression` pipeline is a sum of per-category weights
and per-column affine terms, passed through a sigmoid. :mod:`.compile` extracts those numbers once
into a :class:`LinearScorer`, which then scores records (dicts or columns) with no DataFrame and no
sklearn call. :class:`Scorer` is what both it and the sklearn fallback (:mod:`.fallback`) offer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

import numpy as np

Columns = Mapping[str, Sequence[Any]]


class Scorer(Protocol):
    """Anything that turns columns of raw feature values into probabilities of class 1."""

    @property
    def kind(self) -> str: ...

    @property
    def categorical(self) -> tuple[str, ...]: ...

    @property
    def numeric(self) -> tuple[str, ...]: ...

    def score_columns(self, columns: Columns, n: int) -> np.ndarray: ...

    def score_list(self, columns: Columns, n: int) -> list[float]: ...

    def score_one(self, record: Mapping[str, Any]) -> tuple[float, dict[str, list[str]]]: ...

    def unknown_categories(self, columns: Columns) -> dict[str, list[str]]: ...


def is_missing(value: Any) -> bool:
    """None or a float NaN: what the encoder and imputer treat as missing."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class LinearScorer:
    """p = sigmoid(bias + sum(cat_weight[col][value]) + sum(w_num * x_filled))."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    cat_weights: tuple[dict[Any, float], ...]  # per categorical column; None = missing category
    num_fill: np.ndarray  # imputer statistics (used where a value is missing)
    num_weights: np.ndarray  # coef / scale
    bias: float  # intercept - sum(coef * mean / scale)
    kind: str = field(default="linear")

    SMALL = 16  # up to this many records, plain Python beats numpy's per-call overhead

    @cached_property
    def _plain(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The weights as Python floats: (column, weights, missing weight), (column, w, fill)."""
        pairs = zip(self.categorical, self.cat_weights, strict=True)
        cats = tuple((c, w, w.get(None, 0.0)) for c, w in pairs)
        triples = zip(self.numeric, self.num_weights, self.num_fill, strict=True)
        nums = tuple((c, float(w), float(f)) for c, w, f in triples)
        return cats, nums

    def score_list(self, columns: Columns, n: int) -> list[float]:
        """Probabilities as a list: plain Python for a few records, vectorised otherwise."""
        if n > self.SMALL:
            return self.score_columns(columns, n).tolist()  # type: ignore[no-any-return]
        cats, nums = self._plain
        out = []
        for i in range(n):
            z = self.bias
            for col, weights, miss in cats:
                v = columns[col][i]
                z += weights.get(v, 0.0) if v == v else miss
            for col, w, fill in nums:
                x = columns[col][i]
                z += w * (fill if x is None or x != x else x)
            out.append(1.0 / (1.0 + math.exp(-min(max(z, -700.0), 700.0))))
        return out

    @cached_property
    def _unrolled(self) -> Callable[[Any], float | None]:
        """`score_one`'s common case as straight-line Python (see :meth:`unrolled`)."""
        return self.unrolled({c: f"r[{c!r}]" for c in (*self.categorical, *self.numeric)})

    def unrolled(self, access: Mapping[str, str]) -> Callable[[Any], float | None]:
        """One record's probability as straight-line Python generated from the weights; each
        column's value is read with the expression `access[column]` on the record `r`.

        One statement per column, weights as literals (`repr` round-trips floats exactly): about
        40% faster than looping over the columns. Returns None when the record needs the general
        path: an unknown category, a missing one the encoder never learned, or a NaN number.
        """
        cats, nums = self._plain
        env: dict[str, Any] = {"exp": math.exp}
        lines = ["def score(r):", f"    z = {self.bias!r}"]
        for i, (col, weights, _) in enumerate(cats):
            env[f"W{i}"] = weights  # None is the key of a learned "missing" category
            lines += [
                f"    w = W{i}.get({access[col]})",
                "    if w is None:",
                "        return None",
                "    z += w",
            ]
        for col, w, fill in nums:
            lines += [f"    x = {access[col]}", f"    z += {w!r} * ({fill!r} if x is None else x)"]
        lines += [
            "    if z != z:",
            "        return None",
            "    return 1.0 / (1.0 + exp(-min(max(z, -700.0), 700.0)))",
        ]
        exec("\n".join(lines), env)  # generated from finite floats and column names only
        return env["score"]  # type: ignore[no-any-return]

    def score_one(self, record: Mapping[str, Any]) -> tuple[float, dict[str, list[str]]]:
        """One record's probability and its unknown categories (the single-record hot path)."""
        p = self._unrolled(record)
        if p is not None:
            return p, {}
        cats, nums = self._plain
        z = self.bias
        unknown: dict[str, list[str]] = {}
        for col, weights, miss in cats:
            v = record[col]
            w = weights.get(v)
            if w is not None:
                z += w
            elif v is None or v != v:
                z += miss
            else:
                unknown[col] = [str(v)]
        for col, w, fill in nums:
            x = record[col]
            z += w * (fill if x is None else x)
        if z != z:  # a NaN number means missing, like None: the general loop imputes it
            columns = {c: (record[c],) for c in (*self.categorical, *self.numeric)}
            return self.score_list(columns, 1)[0], unknown
        return 1.0 / (1.0 + math.exp(-min(max(z, -700.0), 700.0))), unknown

    def score_columns(self, columns: Columns, n: int) -> np.ndarray:
        """Probabilities for `n` records given as one sequence per feature column."""
        z = np.full(n, self.bias, dtype=np.float64)
        for col, weights in zip(self.categorical, self.cat_weights, strict=True):
            get, miss = weights.get, weights.get(None, 0.0)
            # `v == v` is False only for NaN: a float NaN is a missing category, like None
            z += np.fromiter(
                (get(v, 0.0) if v == v else miss for v in columns[col]), dtype=np.float64, count=n
            )
        if self.numeric:
            x = np.array(
                [[np.nan if v is None else v for v in columns[col]] for col in self.numeric],
                dtype=np.float64,
            )
            missing = np.isnan(x)
            if missing.any():
                x = np.where(missing, self.num_fill[:, None], x)
            z += self.num_weights @ x
        return 1.0 / (1.0 + np.exp(-z))

    def unknown_categories(self, columns: Columns) -> dict[str, list[str]]:
        """Per categorical column, the values the encoder never saw (they weigh nothing)."""
        out: dict[str, list[str]] = {}
        for col, weights in zip(self.categorical, self.cat_weights, strict=True):
            unseen = sorted({str(v) for v in columns[col] if v not in weights and v is not None})
            if unseen:
                out[col] = unseen
        return out
