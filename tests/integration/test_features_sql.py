"""features.sql on a tiny real SQLite DB loaded through the real load path."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from sqlalchemy import Engine, text

from flightdelay.core.config import LoadParams, Params, parse_params
from flightdelay.core.db import make_engine
from flightdelay.core.errors import UserError
from flightdelay.pipeline.features import build_features
from flightdelay.pipeline.load import load_tables
from tests.conftest import ROOT
from tests.fixtures import write_raw

POST_DEPARTURE = {"dep_time", "dep_delay", "arr_time", "air_time", "arr_delay"}
# Flights 1-3 train, 4-5 test: both classes on both sides of the five fixture flights.
BY_FLIGHT = {"strategy": "column", "column": "flight", "train": [1, 2, 3], "test": [4, 5]}


def fixture_params(cancelled_as_delayed: bool = True, **features: object) -> Params:
    """The repo's params.yaml with a split that suits the fixture flights."""
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["features"]["sql_params"]["cancelled_as_delayed"] = cancelled_as_delayed
    raw["features"].update({"split": BY_FLIGHT, "key": ["flight"], **features})
    return parse_params(raw)


def build_and_split(
    engine: Engine, params: Params, sql: str | None = None, out: Path | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The stage's streaming build into `out` (a fresh folder by default), read back."""
    out = out or Path(tempfile.mkdtemp(prefix="fd-features-"))
    counts = build_features(engine, params, out, sql=sql)
    train, test = (pd.read_parquet(out / f"{s}.parquet") for s in ("train", "test"))
    assert (counts["train"], counts["test"]) == (len(train), len(test))
    return train, test, counts["rows"]


def loaded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    load_tables(url, write_raw(tmp_path / "raw"), LoadParams(progress_min_rows=10**6, chunk_rows=2))
    return url


def build(tmp_path: Path, cancelled_as_delayed: bool = True) -> pd.DataFrame:
    engine = make_engine(loaded(tmp_path))
    train, test, rows = build_and_split(engine, fixture_params(cancelled_as_delayed))
    frame = pd.read_sql(text("SELECT * FROM flight_features ORDER BY flight"), engine)
    engine.dispose()
    assert rows == len(frame) == len(train) + len(test)
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
    engine = make_engine(loaded(tmp_path))
    split = {"strategy": "column", "column": "month", "train": list(range(1, 11)), "test": [11]}
    with pytest.raises(UserError, match="the test side has no negative rows"):
        build_and_split(engine, fixture_params(split=split))  # flight 5 (Nov) alone: delayed
    cut = {"strategy": "time", "column": "time_hour", "cutoff": "2013-02-01"}
    with pytest.raises(UserError, match=r"split \(time\): the test side has no positive rows"):
        build_and_split(engine, fixture_params(split=cut))  # flight 4 (March) alone: on time
    months = {"strategy": "column", "column": "month", "train": [1], "test": [3, 11]}
    train, test, _ = build_and_split(engine, fixture_params(split=months))
    engine.dispose()
    assert set(train["month"]) == {1} and set(test["month"]) == {3, 11}
    assert train["flight"].tolist() == [1, 2, 3] and test["flight"].tolist() == [4, 5]


def test_failed_split_keeps_previous_table_and_files(tmp_path: Path) -> None:
    engine = make_engine(loaded(tmp_path))
    build_and_split(engine, fixture_params(), out=tmp_path / "processed")
    before = (tmp_path / "processed/train.parquet").read_bytes()
    one_class = {"strategy": "column", "column": "flight", "train": [1, 3], "test": [2, 4, 5]}
    with pytest.raises(UserError, match="the train side has no negative rows"):
        build_and_split(engine, fixture_params(split=one_class), out=tmp_path / "processed")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM flight_features")).scalar_one() == 5
        names = conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'")).scalars()
        assert "flight_features__new" not in set(names)
    engine.dispose()
    assert (tmp_path / "processed/train.parquet").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "processed").iterdir()) == [
        "test.parquet",
        "train.parquet",
    ]  # no temporary file left behind


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"key": ["flihgt"]},
            r"params.yaml features.key: 'flihgt' is not a column of features.sql",
        ),
        (
            {"split": {**BY_FLIGHT, "column": "fligth"}},
            r"params.yaml features.split.column: 'fligth' is not a column",
        ),
        ({"sql_params": {"threshold_minutes": 15}}, r"features.sql uses :cancelled_as_delayed"),
        (
            {"sql_params": {"threshold_minutes": 15, "cancelled_as_delayed": 1, "x": 2}},
            r"params.yaml features.sql_params.x: features.sql has no :x",
        ),
    ],
)
def test_bad_names_are_one_line_before_anything_is_written(
    tmp_path: Path, change: dict, message: str
) -> None:
    engine = make_engine(loaded(tmp_path))
    with pytest.raises(UserError, match=message) as err:
        build_and_split(engine, fixture_params(**change))
    assert "\n" not in str(err.value)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT name FROM sqlite_master")).scalars())
    engine.dispose()
    assert not {"flight_features", "flight_features__new"} & names


def test_wrong_target_is_named(tmp_path: Path) -> None:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["features"].update({"split": BY_FLIGHT})
    raw["train"]["target"] = "delay"
    engine = make_engine(loaded(tmp_path))
    with pytest.raises(UserError, match=r"params.yaml train.target: 'delay' is not a column"):
        build_and_split(engine, parse_params(raw))
    raw["train"]["target"], raw["train"]["positive"] = "delayed", "yes"
    with pytest.raises(UserError, match=r"train.positive: 'yes' is not a value of train.target"):
        build_and_split(engine, parse_params(raw))
    engine.dispose()


def test_sql_error_names_the_file_and_statement(tmp_path: Path) -> None:
    engine = make_engine(loaded(tmp_path))
    sql = "SELECT f.flight, f.carier, 1 AS delayed FROM flights AS f"
    with pytest.raises(UserError) as err:
        build_and_split(engine, fixture_params(sql_params={}), sql=sql)
    engine.dispose()
    msg = str(err.value)
    assert msg.startswith("features.sql (SELECT f.flight, f.carier") and "carier" in msg
    assert "\n" not in msg


QUOTED_SQL = """
SELECT f.flight, f.month, f.carrier AS "Carrier", f.origin AS "order",
       CASE WHEN f.arr_delay >= 15 OR f.arr_delay IS NULL THEN 'Yes' ELSE 'No' END AS "default"
FROM flights AS f
"""


def test_quoted_and_capitalised_output_columns(tmp_path: Path) -> None:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["features"].update({"split": BY_FLIGHT, "key": ["flight"], "sql_params": {}})
    raw["train"].update({"target": "default", "positive": "Yes"})
    engine = make_engine(loaded(tmp_path))
    train, test, _ = build_and_split(engine, parse_params(raw), sql=QUOTED_SQL)
    assert list(train.columns) == ["flight", "month", "Carrier", "order", "default"]
    assert test["default"].tolist() == ["No", "Yes"]
    unquoted = QUOTED_SQL.replace('AS "Carrier"', "AS Carrier")
    with pytest.raises(UserError, match=r'features.sql: column Carrier .* write "Carrier"'):
        build_and_split(engine, parse_params(raw), sql=unquoted)
    engine.dispose()


def test_parquet_is_byte_stable_without_pandas_metadata(tmp_path: Path) -> None:
    engine = make_engine(loaded(tmp_path))
    build_and_split(engine, fixture_params(), out=tmp_path / "a")
    build_and_split(engine, fixture_params(), out=tmp_path / "b")  # a second build
    engine.dispose()
    for name in ("train.parquet", "test.parquet"):
        data = (tmp_path / "a" / name).read_bytes()
        assert data == (tmp_path / "b" / name).read_bytes()
        assert b"pandas" not in data and pq.read_schema(tmp_path / "a" / name).metadata is None
    back = pd.read_parquet(tmp_path / "a/train.parquet")
    assert str(back["time_hour"].dtype) == "datetime64[us, UTC]"
    assert back["flight"].tolist() == [1, 2, 3]  # features.key order
