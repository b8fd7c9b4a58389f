"""Stage features: materialize sql/features.sql as a table and export the train/test splits.

In ONE transaction: the query runs into a staging table, which is read back, checked (the
key, the split column and the target exist; NULL targets; both classes on both sides) and
split, and only then swapped in; the parquet files are written last. A bad input therefore
leaves the previous table and files as they were.

The same data gives the same bytes on SQLite and PostgreSQL: columns get one type on both
(:func:`canonical_frame`), rows are ordered by `features.key` or else by a hash of their content
(never by rowid or the database's order), and the parquet writer's options are fixed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, text

from flightdelay.core.config import (
    ColumnSplit,
    FeaturesParams,
    GroupSplit,
    Params,
    RandomSplit,
    SplitParams,
    TimeSplit,
    get_pipeline_settings,
    load_params,
)
from flightdelay.core.db import (
    arrow_table,
    check_case,
    make_engine,
    one_line,
    quote,
    read_sql,
    strip_comments,
    write_parquet,
)
from flightdelay.core.errors import UserError
from flightdelay.core.labels import canon, drop_null_target, positives, to_binary

log = logging.getLogger(__name__)

SOURCE = "features.sql"
# The text form the loader gives timestamps in SQLite (PostgreSQL has a real timestamptz).
_SQLITE_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\+00:00")
_HASH = "__row_hash"

Mask = np.ndarray[Any, np.dtype[np.bool_]]


def bind_params(select: str, sql_params: dict[str, Any]) -> dict[str, Any]:
    """The bind parameters of `select` from `features.sql_params` (booleans bound as 1/0, so
    `CASE ... THEN :flag` has one type on both engines); a missing or unused one is an error."""
    used = set(text(select).compile().params)
    missing = sorted(used - set(sql_params))
    if missing:
        raise UserError(f"{SOURCE} uses :{missing[0]}: add it to params.yaml features.sql_params")
    unused = sorted(set(sql_params) - used)
    if unused:
        raise UserError(
            f"params.yaml features.sql_params.{unused[0]}: {SOURCE} has no :{unused[0]}"
        )
    return {k: int(v) if isinstance(v, bool) else v for k, v in sql_params.items()}


@contextmanager
def sql_errors(statement: str) -> Iterator[None]:
    """Turn a database error into one UserError line naming features.sql and the statement."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        msg = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        raise UserError(f"{SOURCE} ({one_line(statement)}): {msg[0]}") from exc


def check_columns(columns: list[str], params: Params, select: str) -> None:
    """Every column the params name exists in the query's result, once, with a portable name."""
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise UserError(f"{SOURCE}: column {col} appears twice; give one an alias")
        seen.add(col)
        check_case(SOURCE, "column", col, select)
    split = params.features.split
    named = [("features.key", c) for c in params.features.key]
    if not isinstance(split, RandomSplit):
        named.append(("features.split.column", split.column))
    named.append(("train.target", params.train.target))
    for key, col in named:
        if col not in seen:
            raise UserError(
                f"params.yaml {key}: {col!r} is not a column of {SOURCE} "
                f"(columns: {', '.join(columns)})"
            )


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


def make_splits(frame: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The checked train and test frames (canonical types and row order)."""
    target = params.train.target
    frame, dropped = drop_null_target(frame, target, params.train.drop_null_target)
    if dropped:
        log.info("dropped %d row(s) whose train.target %r is NULL", dropped, target)
    frame = canonical_order(canonical_frame(frame), params.features.key)
    y = to_binary(frame[target], params.train.positive, target=target)
    train, test = split_masks(frame, y, params.features.split)
    check_sides(y, train, test, params)
    left_out = int((~train & ~test).sum())
    if left_out:
        log.info("features.split: %d row(s) in neither side", left_out)
    return frame[train].reset_index(drop=True), frame[test].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------


def build_and_split(
    engine: Engine, params: Params, sql: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Build the feature table from `sql` (default: the packaged features.sql) and split it,
    in one transaction; returns train, test and the table's row count."""
    select = strip_comments(sql if sql is not None else read_sql(SOURCE)).strip().rstrip(";")
    binds = bind_params(select, params.features.sql_params)
    with engine.begin() as conn:
        with sql_errors(select):
            probe = conn.execute(text(f"SELECT * FROM ({select}) AS q WHERE 1 = 0"), binds)
            columns = list(probe.keys())
        check_columns(columns, params, select)
        frame = _build_staging(conn, engine, params.features, select, binds)
        train, test = make_splits(frame, params)
        _swap(conn, engine, params.features.table)
    return train, test, len(frame)


def _build_staging(
    conn: Connection, engine: Engine, fp: FeaturesParams, select: str, binds: dict[str, Any]
) -> pd.DataFrame:
    staging = quote(engine, f"{fp.table}__new")
    conn.execute(text(f"DROP TABLE IF EXISTS {staging}"))
    with sql_errors(select):
        conn.execute(text(f"CREATE TABLE {staging} AS {select}"), binds)
    return pd.read_sql(text(f"SELECT * FROM {staging}"), conn)


def _swap(conn: Connection, engine: Engine, table: str) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {quote(engine, table)}"))
    staging = quote(engine, f"{table}__new")
    conn.execute(text(f"ALTER TABLE {staging} RENAME TO {quote(engine, table)}"))


def write_splits(train: pd.DataFrame, test: pd.DataFrame, out_dir: Path) -> None:
    """`out_dir/{train,test}.parquet`, byte-stable."""
    for name, part in (("train", train), ("test", test)):
        write_parquet(arrow_table(part), out_dir / f"{name}.parquet")


def main(out_dir: str, _load_report: str) -> None:
    """Run the stage: build the table in DATABASE_URL and write train/test parquet files."""
    params = load_params()
    engine = make_engine(get_pipeline_settings().database_url)
    try:
        train, test, rows = build_and_split(engine, params)
    finally:
        engine.dispose()
    write_splits(train, test, Path(out_dir))
    log.info("%s: %d rows; train %d, test %d", params.features.table, rows, len(train), len(test))
