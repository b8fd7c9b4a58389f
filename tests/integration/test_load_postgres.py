"""The load and features stages on a real (throwaway) PostgreSQL: COPY path, atomicity."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from flightdelay.core.config import LoadParams
from flightdelay.core.db import make_engine
from flightdelay.core.errors import UserError
from flightdelay.pipeline.features import build_feature_table
from flightdelay.pipeline.load import load_tables
from flightdelay.stack.pgcluster import throwaway_postgres
from tests.fixtures import raw_tables, write_raw

PARAMS = LoadParams(progress_min_rows=10**6, chunk_rows=2)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as info:
        yield info["features"]


def flights_count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM flights")).scalar_one()
    engine.dispose()
    return int(n)


def test_copy_load_features_match_sqlite(tmp_path: Path, pg_url: str) -> None:
    raw = write_raw(tmp_path / "raw")
    sqlite_url = f"sqlite:///{tmp_path / 'f.db'}"
    frames = {}
    for url in (pg_url, sqlite_url):
        load_tables(url, raw, PARAMS)
        load_tables(url, raw, PARAMS)  # idempotent
        engine = make_engine(url)
        build_feature_table(
            engine, "flight_features", {"threshold_minutes": 15, "cancelled_as_delayed": 1}
        )
        frames[url] = pd.read_sql(text("SELECT * FROM flight_features ORDER BY flight"), engine)
        engine.dispose()
    pg, lite = frames[pg_url], frames[sqlite_url]
    cols = [c for c in lite.columns if c != "time_hour"]  # timestamptz vs ISO text
    pd.testing.assert_frame_equal(
        pg[cols].astype(object).where(pg[cols].notna(), None),
        lite[cols].astype(object).where(lite[cols].notna(), None),
        check_dtype=False,
    )
    assert flights_count(pg_url) == 5


def test_failed_copy_keeps_previous_tables(tmp_path: Path, pg_url: str) -> None:
    load_tables(pg_url, write_raw(tmp_path / "raw"), PARAMS)
    tables = raw_tables()
    tables["flights"] = pd.concat([tables["flights"]] * 4, ignore_index=True)
    tables["weather"] = pd.concat([tables["weather"]] * 2, ignore_index=True)  # PK violation
    with pytest.raises(UserError, match="previous tables kept"):
        load_tables(pg_url, write_raw(tmp_path / "bad", tables), PARAMS)
    assert flights_count(pg_url) == 5
