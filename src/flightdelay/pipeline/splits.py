"""The splits of stage features (pure): canonical column types and row order, the train/test
masks of every `features.split` strategy, and their checks."""

from __future__ import annotations

import logging
import re
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from flightdelay.core.config import (
    ColumnSplit,
    GroupSplit,
    Params,
    SplitParams,
    TimeSplit,
)
from flightdelay.core.errors import UserError
from flightdelay.core.labels import canon, drop_null_target, positives, to_binary

log = logging.getLogger(__name__)

# The text form the loader gives timestamps in SQLite (PostgreSQL has a real timestamptz).
_SQLITE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00")
_HASH = "__row_hash"

Mask = np.ndarray[Any, np.dtype[np.bool_]]


def canonical_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One type per column whatever the engine: timestamps as UTC microseconds (SQLite's ISO
    text included), booleans as 0/1, decimals as floats."""
    return pd.DataFrame({name: _canonical(s) for name, s in frame.items()}, index=frame.index)


def _canonical(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return pd.Series(s.dt.tz_convert("UTC").astype("datetime64[us, UTC]"))
    if pd.api.types.is_datetime64_dtype(s.dtype):
        return pd.Series(s.dt.tz_localize("UTC").astype("datetime64[us, UTC]"))
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("int64")
    if s.dtype != object and not pd.api.types.is_string_dtype(s.dtype):
        return s
    values = s.dropna()
    if values.empty:
        return s.astype(object)
    if all(isinstance(v, bool | np.bool_) for v in values):
        return s.map(lambda v: float("nan") if pd.isna(v) else float(v)).astype("float64")
    if all(isinstance(v, Decimal | int | float) for v in values):
        return s.astype("float64")
    if all(isinstance(v, str) for v in values) and values.str.fullmatch(_SQLITE_TIMESTAMP).all():
        return pd.to_datetime(s, utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    return s


def canonical_order(frame: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Rows ordered by `key` (which must be unique), else by a hash of their content."""
    if key:
        dups = int(frame.duplicated(key).sum())
        if dups:
            raise UserError(f"params.yaml features.key {key}: {dups} row(s) repeat a key")
    hashed = frame.assign(**{_HASH: pd.util.hash_pandas_object(frame, index=False).to_numpy()})
    ordered = hashed.sort_values([*key, _HASH], kind="mergesort", na_position="last")
    return ordered.drop(columns=_HASH).reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# splits (pure): the frame is in canonical order, y is the 0/1 label
# --------------------------------------------------------------------------------------------


def split_masks(frame: pd.DataFrame, y: np.ndarray, split: SplitParams) -> tuple[Mask, Mask]:
    """Boolean masks of the train and the test rows under `split`."""
    if isinstance(split, ColumnSplit):
        both = [v for v in split.test if canon(v) in {canon(t) for t in split.train}]
        if both:
            raise UserError(f"params.yaml features.split: {both} in train and test")
        values = frame[split.column].map(canon)
        train = values.isin({canon(v) for v in split.train}).to_numpy()
        return train, values.isin({canon(v) for v in split.test}).to_numpy()
    if isinstance(split, TimeSplit):
        return _time_masks(frame[split.column], split.cutoff)
    rng = np.random.default_rng(split.seed)
    test = np.zeros(len(frame), dtype=bool)
    if isinstance(split, GroupSplit):
        return _group_masks(frame[split.column], split.test_fraction, rng)
    strata = (
        [np.flatnonzero(y == c) for c in (0, 1)]
        if split.strategy == "stratified"
        else [np.arange(len(frame))]
    )
    for rows in strata:
        test[rng.permutation(rows)[: round(len(rows) * split.test_fraction)]] = True
    return ~test, test


def _time_masks(column: pd.Series, cutoff: str | float) -> tuple[Mask, Mask]:
    key = "params.yaml features.split.cutoff"
    at: pd.Timestamp | float
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        try:
            stamp = pd.Timestamp(cutoff)
        except (ValueError, TypeError):
            raise UserError(f"{key}: {cutoff!r} is not a date/time") from None
        at = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(column.dtype):
        try:
            at = float(cutoff)
        except ValueError:
            raise UserError(f"{key}: {cutoff!r} is not a number like {column.name!r}") from None
    else:
        raise UserError(
            f"params.yaml features.split.column: {column.name!r} is neither a time nor a number "
            "(declare it TIMESTAMP WITH TIME ZONE in schema.sql, or split by column)"
        )
    known = column.notna().to_numpy()
    before = (column < at).to_numpy(dtype=bool, na_value=False)
    return before & known, ~before & known


def _group_masks(column: pd.Series, fraction: float, rng: np.random.Generator) -> tuple[Mask, Mask]:
    codes, uniques = pd.factorize(column.map(canon), sort=True, use_na_sentinel=False)
    if len(uniques) < 2:
        raise UserError(f"params.yaml features.split.column: {column.name!r} has one group")
    sizes = np.bincount(codes, minlength=len(uniques))
    order = rng.permutation(len(uniques))
    taken = np.cumsum(sizes[order]) <= round(len(column) * fraction)
    n_test = min(max(int(taken.sum()), 1), len(uniques) - 1)
    test = np.isin(codes, order[:n_test])
    return ~test, test


def check_sides(y: np.ndarray, train: Mask, test: Mask, params: Params) -> None:
    """Both sides are non-empty and hold both classes; else say which side lacks which."""
    where = f"params.yaml features.split ({params.features.split.strategy})"
    shown = ", ".join(repr(p) for p in positives(params.train.positive))
    for side, mask in (("train", train), ("test", test)):
        if not mask.any():
            raise UserError(f"{where}: the {side} side is empty")
        for cls, word in ((1, "positive"), (0, "negative")):
            if not (y[mask] == cls).any():
                raise UserError(
                    f"{where}: the {side} side has no {word} rows (train.target "
                    f"{params.train.target!r}, train.positive {shown})"
                )


def split_rows(frame: pd.DataFrame, params: Params) -> tuple[Mask, Mask]:
    """Train and test masks over `frame` (canonical order and types, NULL targets included):
    NULL targets dropped (counted) or refused, then split and checked."""
    target = params.train.target
    known = frame[target].notna().to_numpy()
    kept, dropped = drop_null_target(frame, target, params.train.drop_null_target)
    if dropped:
        log.info("dropped %d row(s) whose train.target %r is NULL", dropped, target)
    y = to_binary(kept[target], params.train.positive, target=target)
    train, test = split_masks(kept, y, params.features.split)
    check_sides(y, train, test, params)
    left_out = int((~train & ~test).sum())
    if left_out:
        log.info("features.split: %d row(s) in neither side", left_out)
    full_train, full_test = np.zeros(len(frame), dtype=bool), np.zeros(len(frame), dtype=bool)
    full_train[known], full_test[known] = train, test
    return full_train, full_test


def make_splits(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checked train and test frames (canonical types and row order), in memory."""
    frame = canonical_order(canonical_frame(frame), params.features.key)
    train, test = split_rows(frame, params)
    return frame[train].reset_index(drop=True), frame[test].reset_index(drop=True)
