"""features.sql on a tiny real SQLite DB loaded through the real load path."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from flightdelay.core.config import LoadParams
from flightdelay.core.db import make_engine
from flightdelay.pipeline.features import build_feature_table, split_frame
from flightdelay.pipeline.load import load_tables
from tests.fixtures import write_raw

POST_DEPARTURE = {"dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"}


def build(tmp_path: Path, cancelled_as_delayed: bool = True) -> pd.DataFrame:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    load_tables(url, write_raw(tmp_path / "raw"), LoadParams(progress_min_rows=10**6, chunk_rows=2))
    engine = make_engine(url)
    qp = {"threshold_minutes": 15, "cancelled_as_delayed": int(cancelled_as_delayed)}
    rows = build_feature_table(engine, "flight_features", qp)
    frame = pd.read_sql(text("SELECT * FROM flight_features ORDER BY flight"), engine)
    engine.dispose()
    assert rows == len(frame)
    return frame.set_index("flight")


def test_label_edge_cases(tmp_path: Path) -> None:
    f = build(tmp_path)
    assert f.loc[1, "delayed"] == 1  # arr_delay == 15
    assert f.loc[2, "delayed"] == 0  # arr_delay == 14
    assert f.loc[3, "delayed"] == 1  # cancelled counts as delayed
    assert f.loc[4, "delayed"] == 0
    assert f.loc[5, "delayed"] == 1


def test_cancelled_dropped_when_flag_off(tmp_path: Path) -> None:
    f = build(tmp_path, cancelled_as_delayed=False)
    assert 3 not in f.index
    assert len(f) == 4


def test_join_keys_and_derived_columns(tmp_path: Path) -> None:
    f = build(tmp_path)
    first = f.loc[1]
    assert first["temp"] == 40.0  # weather joined on origin + time_hour
    assert first["seats"] == 150 and first["manufacturer"] == "BOEING"  # planes on tailnum
    assert first["dest_lat"] == pytest.approx(29.98)  # airports on dest
    assert first["carrier_name"] == "United"
    assert first["day_of_week"] == 2  # 2013-01-01 was a Tuesday
    assert first["sched_dep_minutes"] == 5 * 60 + 15
    assert first["dep_hour_bucket"] == "morning"
    fourth = f.loc[4]
    assert fourth["day_of_week"] == 0  # 2013-03-10 was a Sunday
    assert fourth["sched_dep_minutes"] == 15 * 60 + 30
    assert fourth["dep_hour_bucket"] == "afternoon"
    assert fourth["carrier_name"] == "American"


def test_missing_weather_plane_airport_give_nulls_not_lost_rows(tmp_path: Path) -> None:
    f = build(tmp_path)
    fourth = f.loc[4]
    for col in ("temp", "seats", "manufacturer", "plane_year", "dest_lat"):
        assert pd.isna(fourth[col]), col
    assert pd.isna(f.loc[5, "seats"])  # no tailnum at all


def test_no_post_departure_columns(tmp_path: Path) -> None:
    f = build(tmp_path)
    assert not POST_DEPARTURE & set(f.columns)


def test_time_based_split(tmp_path: Path) -> None:
    f = build(tmp_path).reset_index()
    train, test = split_frame(f, "month", list(range(1, 11)), [11, 12])
    assert set(train["month"]) == {1, 3} and set(test["month"]) == {11}
