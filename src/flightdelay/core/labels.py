"""The label: any target column mapped to 0/1 by `train.positive` (pure functions).

Values are compared by meaning, not by dtype: 1, 1.0, True, "1" and "true" are the same value,
so `positive: 1` matches an integer, a float, a boolean or a text column of digits; other text
is compared exactly ("Yes" is not "yes").
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from flightdelay.core.errors import UserError

Scalar = str | int | float | bool
Positive = Scalar | Sequence[Scalar] | None

DEFAULT_POSITIVE: tuple[Scalar, ...] = (1, True)


def canon(value: Any) -> Hashable:
    """One comparable form per meaning: numbers (and booleans, numeric text) as floats."""
    if isinstance(value, bool | np.bool_):
        return 1.0 if value else 0.0
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value)
    text = str(value)
    if text.strip().lower() in ("true", "false"):
        return 1.0 if text.strip().lower() == "true" else 0.0
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def positives(positive: Positive) -> tuple[Scalar, ...]:
    """`train.positive` as a tuple of values (the default: 1 / true)."""
    if positive is None:
        return DEFAULT_POSITIVE
    if isinstance(positive, str | int | float | bool):
        return (positive,)
    return tuple(positive)


def _shown(values: Sequence[Any], limit: int = 5) -> str:
    shown = sorted({repr(v) for v in values})
    more = f", … ({len(shown)} values)" if len(shown) > limit else ""
    return ", ".join(shown[:limit]) + more


def null_count_error(target: str, nulls: int) -> UserError:
    """The error for NULL targets when `train.drop_null_target` is false."""
    return UserError(
        f"train.target {target!r}: {nulls} row(s) have a NULL target; fix the data or set "
        "train.drop_null_target: true to drop them"
    )


def to_binary(
    values: pd.Series | Sequence[Any],
    positive: Positive = None,
    *,
    target: str = "target",
    require_both: bool = True,
) -> NDArray[np.int64]:
    """1 where the value is one of `positive` (default 1 / true), else 0.

    Raises UserError for NULL values (with their count), when no value of the target is
    positive (naming `train.positive` and the values seen) and, with `require_both`, when
    every value is positive (the target needs two classes).
    """
    series = pd.Series(values)
    nulls = int(series.isna().sum())
    if nulls:
        raise null_count_error(target, nulls)
    wanted = {canon(p) for p in positives(positive)}
    uniques = list(pd.unique(series))
    mapping = {u: int(canon(u) in wanted) for u in uniques}
    if uniques and not any(mapping.values()):
        raise UserError(
            f"train.positive: {_shown(positives(positive))} is not a value of train.target "
            f"{target!r} (values: {_shown(uniques)})"
        )
    if require_both and (not uniques or all(mapping.values())):
        raise UserError(
            f"train.positive: every value of train.target {target!r} is positive "
            f"(values: {_shown(uniques)}); the target needs two classes"
        )
    return series.map(mapping).to_numpy(dtype=np.int64)


def drop_null_target(frame: pd.DataFrame, target: str, drop: bool) -> tuple[pd.DataFrame, int]:
    """`frame` without its NULL-target rows and how many there were; with `drop` false,
    any NULL target raises UserError giving the count."""
    nulls = frame[target].isna()
    count = int(nulls.sum())
    if count and not drop:
        raise null_count_error(target, count)
    return (frame[~nulls].reset_index(drop=True) if count else frame), count
