"""Expectations on the tables the real pipeline produced (the shared `dvc repro` run)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, text

from flightdelay.core.config import load_params

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
    train = pd.read_parquet(reproduced_repo / "data/processed/train.parquet")
    test = pd.read_parquet(reproduced_repo / "data/processed/test.parquet")
    assert set(train[split.column]) == set(split.train)
    assert set(test[split.column]) == set(split.test)
