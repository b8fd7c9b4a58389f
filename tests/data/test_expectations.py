"""Expectations on the tables the real pipeline produced (the shared `dvc repro` run)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from flightdelay.core.config import load_params
from flightdelay.core.db import make_engine
from flightdelay.pipeline.features import build_features
from flightdelay.pipeline.load import load_tables
from flightdelay.stack.pgcluster import throwaway_postgres

pytestmark = pytest.mark.slow

POST_DEPARTURE = {"dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"}


@pytest.fixture(scope="module")
def features(reproduced_repo: Path) -> pd.DataFrame:
    engine = create_engine(f"sqlite:///{reproduced_repo / 'data/interim/flights.db'}")
    frame = pd.read_sql(text("SELECT * FROM flight_features"), engine)
    engine.dispose()
    return frame


def test_one_row_per_flight_with_a_binary_label(features: pd.DataFrame) -> None:
    assert len(features) == 336_776  # cancelled flights kept (counted as delayed)
    assert set(features["delayed"].unique()) == {0, 1}
    assert 0.15 < features["delayed"].mean() < 0.40


def test_no_post_departure_columns(features: pd.DataFrame) -> None:
    assert not POST_DEPARTURE & set(features.columns)


def test_model_columns_exist_and_joins_filled(features: pd.DataFrame) -> None:
    params = load_params()
    assert set(params.train.categorical + params.train.numeric) <= set(features.columns)
    assert features["carrier_name"].notna().all()
    assert features["temp"].notna().mean() > 0.95  # weather found for almost every flight
    assert features["dest_lat"].notna().mean() > 0.95


def test_splits_are_disjoint_in_time(reproduced_repo: Path) -> None:
    split = load_params().features.split
    assert split.strategy == "time"
    cutoff = pd.Timestamp(split.cutoff)
    train = pd.read_parquet(reproduced_repo / "data/processed/train.parquet")
    test = pd.read_parquet(reproduced_repo / "data/processed/test.parquet")
    assert train[split.column].max() < cutoff <= test[split.column].min()
    # the cutoff is midnight in New York: the same as training on months 1-10, testing on 11-12
    assert set(train["month"]) == set(range(1, 11))
    assert set(test["month"]) == {11, 12}
    assert len(train) + len(test) == 336_776


def test_splits_are_in_key_order_with_one_type_per_column(reproduced_repo: Path) -> None:
    key = load_params().features.key
    for name in ("train", "test"):
        part = pd.read_parquet(reproduced_repo / f"data/processed/{name}.parquet")
        assert str(part["time_hour"].dtype) == "datetime64[us, UTC]"
        assert not part.duplicated(key).any()
        assert part[key].equals(part.sort_values(key, kind="mergesort")[key])


def test_no_numeric_feature_is_pure_extrapolation(reproduced_repo: Path) -> None:
    """Most test values of every numeric feature lie within the range seen in training."""
    train = pd.read_parquet(reproduced_repo / "data/processed/train.parquet")
    test = pd.read_parquet(reproduced_repo / "data/processed/test.parquet")
    for col in load_params().train.numeric:
        seen = test[col].dropna().between(train[col].min(), train[col].max())
        assert seen.mean() > 0.5, col


def test_postgres_gives_byte_identical_processed_files(
    reproduced_repo: Path, tmp_path: Path
) -> None:
    """The real data through load + features on PostgreSQL: the same md5 as the SQLite run."""
    params = load_params(reproduced_repo / "params.yaml")
    with throwaway_postgres() as info:
        load_tables(info["features"], reproduced_repo / "data/raw", params.load)
        engine = make_engine(info["features"])
        try:
            build_features(engine, params, tmp_path)
        finally:
            engine.dispose()
    for name in ("train.parquet", "test.parquet"):
        pg = hashlib.md5((tmp_path / name).read_bytes()).hexdigest()
        lite = hashlib.md5((reproduced_repo / "data/processed" / name).read_bytes()).hexdigest()
        assert pg == lite, name
