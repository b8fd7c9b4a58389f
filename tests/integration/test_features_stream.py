"""Stage features streams: chunks and row groups never change the bytes, which equal what the
in-memory path (the whole table in pandas) writes; the column types come from SQL."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from flightdelay.core import db
from flightdelay.core.config import LoadParams, Params
from flightdelay.core.db import arrow_table, make_engine, write_parquet
from flightdelay.core.errors import UserError
from flightdelay.pipeline import features_stream
from flightdelay.pipeline.features import build_features
from flightdelay.pipeline.load import load_tables
from flightdelay.pipeline.splits import make_splits
from tests.fixtures import flight, raw_tables, write_raw
from tests.integration.test_features_sql import fixture_params

ROWS = 60
SPLIT = {"strategy": "time", "column": "time_hour", "cutoff": "2013-01-02T12:00:00Z"}
# Types that need the whole column: an integer with one NULL (float64), an all-NULL column
# (null), an integer-valued real (float64), text with NULLs, a 0/1 flag.
TYPED_SQL = """
SELECT f.flight, f.carrier, f.time_hour, f.distance, f.tailnum,
       CASE WHEN f.flight = 7 THEN NULL ELSE f.flight END AS maybe,
       CASE WHEN f.flight < 0 THEN 1 END AS blank,
       f.flight * 1.0 AS as_real,
       CASE WHEN f.flight % 5 = 0 THEN NULL ELSE f.dest END AS dest,
       CASE WHEN f.arr_delay IS NULL OR f.arr_delay >= 15 THEN 1 ELSE 0 END AS delayed
FROM flights AS f
"""


def many_flights(folder: Path) -> Path:
    """`ROWS` flights over three days, every fourth one delayed, some cancelled."""
    tables = raw_tables()
    rows = [
        flight(
            flight=i,
            carrier="AA" if i % 2 else "UA",
            day=1 + i % 3,
            time_hour=f"2013-01-0{1 + i % 3}T{10 + i % 12:02d}:00:00Z",
            arr_delay=None if i % 11 == 0 else float(30 if i % 4 == 0 else i % 10),
        )
        for i in range(1, ROWS + 1)
    ]
    tables["flights"] = pd.DataFrame(rows)
    return write_raw(folder, tables)


def loaded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'f.db'}"
    load_tables(
        url, many_flights(tmp_path / "raw"), LoadParams(progress_min_rows=10**6, chunk_rows=50)
    )
    return url


def params(**features: object) -> Params:
    return fixture_params(**{"split": SPLIT, "key": ["flight"], "sql_params": {}, **features})


def in_memory(url: str, p: Params, sql: str, out: Path) -> None:
    """The reference: the whole staging query in pandas, split and written in one go."""
    engine = make_engine(url)
    frame = pd.read_sql(text(sql), engine)
    engine.dispose()
    for name, part in zip(("train", "test"), make_splits(frame, p), strict=True):
        write_parquet(arrow_table(part), out / f"{name}.parquet")


@pytest.mark.parametrize(("chunk", "group"), [(7, 8), (1000, 1 << 20), (60, 13)])
def test_chunks_and_row_groups_give_the_in_memory_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int, group: int
) -> None:
    url = loaded(tmp_path)
    monkeypatch.setattr(features_stream, "CHUNK_ROWS", chunk)
    monkeypatch.setattr(features_stream, "ROW_GROUP_ROWS", group)
    monkeypatch.setattr(db, "ROW_GROUP_ROWS", group)
    engine = make_engine(url)
    counts = build_features(engine, params(), tmp_path / "stream", sql=TYPED_SQL)
    engine.dispose()
    in_memory(url, params(), TYPED_SQL, tmp_path / "memory")
    for name in ("train", "test"):
        streamed = tmp_path / "stream" / f"{name}.parquet"
        assert streamed.read_bytes() == (tmp_path / "memory" / f"{name}.parquet").read_bytes()
        assert pq.ParquetFile(streamed).num_row_groups == -(-counts[name] // group)
    back = pq.read_table(tmp_path / "stream/train.parquet")
    types = {f.name: str(f.type) for f in back.schema}
    assert types["maybe"] == "double" and types["blank"] == "null"
    assert types["as_real"] == "double" and types["time_hour"] == "timestamp[us, tz=UTC]"
    assert counts["rows"] == ROWS and counts["train"] + counts["test"] == ROWS
    assert back.column("flight").to_pylist() == sorted(back.column("flight").to_pylist())


def test_a_repeated_key_across_chunks_is_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(features_stream, "CHUNK_ROWS", 7)
    engine = make_engine(loaded(tmp_path))
    with pytest.raises(UserError, match=r"features.key \['carrier'\]: 58 row\(s\) repeat a key"):
        build_features(engine, params(key=["carrier"]), tmp_path / "out", sql=TYPED_SQL)
    engine.dispose()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_a_column_mixing_sqlite_types_is_one_line(tmp_path: Path) -> None:
    engine = make_engine(loaded(tmp_path))
    sql = TYPED_SQL.replace("f.tailnum,", "CASE WHEN f.flight = 3 THEN 'x' ELSE 1 END AS mixed,")
    with pytest.raises(UserError, match=r"column mixed mixes SQLite value types") as err:
        build_features(engine, params(), tmp_path / "out", sql=sql)
    engine.dispose()
    assert "\n" not in str(err.value)


def test_text_is_ordered_by_code_point_with_nulls_last(tmp_path: Path) -> None:
    engine = make_engine(loaded(tmp_path))
    build_features(engine, params(key=["dest", "flight"]), tmp_path / "out", sql=TYPED_SQL)
    engine.dispose()
    both = pd.concat([pd.read_parquet(tmp_path / f"out/{s}.parquet") for s in ("train", "test")])
    for part in (pd.read_parquet(tmp_path / f"out/{s}.parquet") for s in ("train", "test")):
        dest = part["dest"].tolist()
        known = [d for d in dest if d is not None and d == d]
        assert dest[: len(known)] == sorted(known)  # NULLs after every value
    assert len(both) == ROWS
