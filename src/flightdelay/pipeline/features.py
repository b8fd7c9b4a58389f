"""Stage features: materialize sql/features.sql as a table and export the time-based splits.

The table is built under a temporary name and swapped in within one transaction, so readers
(pgAdmin, the notebook) never see a half-built table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, text

from flightdelay.core.config import Params, get_pipeline_settings, load_params
from flightdelay.core.db import make_engine, read_sql
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)


def feature_query_params(params: Params) -> dict[str, float | int]:
    """The bound parameters of features.sql, from params.yaml `label`."""
    return {
        "threshold_minutes": params.label.threshold_minutes,
        "cancelled_as_delayed": int(params.label.cancelled_as_delayed),
    }


def build_feature_table(engine: Engine, table: str, query_params: dict[str, float | int]) -> int:
    """Create (or replace) `table` from features.sql; returns its row count."""
    select = read_sql("features.sql").strip().rstrip(";")
    staging = f"{table}__new"
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {staging}"))
        conn.execute(text(f"CREATE TABLE {staging} AS {select}"), query_params)
        conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
        conn.execute(text(f"ALTER TABLE {staging} RENAME TO {table}"))
        rows = conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    return int(rows)


def split_frame(
    frame: pd.DataFrame, column: str, train: list[int], test: list[int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based split: rows whose `column` is in `train` / in `test`."""
    if column not in frame.columns:
        raise UserError(f"params.yaml features.split.column: {column!r} is not a feature column")
    overlap = set(train) & set(test)
    if overlap:
        raise UserError(f"params.yaml features.split: {sorted(overlap)} in both train and test")
    return (
        frame[frame[column].isin(train)].reset_index(drop=True),
        frame[frame[column].isin(test)].reset_index(drop=True),
    )


def main(out_dir: str, _load_report: str) -> None:
    """Run the stage: build the table in DATABASE_URL and write train/test parquet files."""
    params = load_params()
    engine = make_engine(get_pipeline_settings().database_url)
    try:
        table = params.features.table
        rows = build_feature_table(engine, table, feature_query_params(params))
        frame = pd.read_sql(text(f"SELECT * FROM {table}"), engine)
    finally:
        engine.dispose()
    split = params.features.split
    train, test = split_frame(frame, split.column, split.train, split.test)
    if train.empty or test.empty:
        raise UserError("params.yaml features.split: the train or the test split is empty")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        part.to_parquet(out / f"{name}.parquet", index=False)
    log.info("%s: %d rows; train %d, test %d", table, rows, len(train), len(test))
