"""The load and features stages on a real (throwaway) PostgreSQL: COPY path, atomicity."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from flightdelay.core import db
from flightdelay.core.config import LoadParams
from flightdelay.core.db import make_engine
from flightdelay.core.errors import UserError
from flightdelay.pipeline.features import build_features
from flightdelay.pipeline.load import load_tables
from flightdelay.pipeline.splits import canonical_frame
from flightdelay.stack.pgcluster import throwaway_postgres
from tests.fixtures import raw_tables, write_raw
from tests.integration.test_features_sql import build_and_split, fixture_params

PARAMS = LoadParams(progress_min_rows=10**6, chunk_rows=2)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with throwaway_postgres() as info:
        yield info["features"]


@pytest.fixture(autouse=True, params=["binary", "csv"])
def copy_format(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with both COPY encodings: binary (pgpq installed) and the CSV fallback."""
    if request.param == "csv":
        monkeypatch.setattr(db, "_binary_types", lambda *_: None)
    else:  # pgpq is a dependency of the pipeline extra: without it this path would go untested
        assert importlib.util.find_spec("pgpq") is not None, "pgpq is not installed: make install"
    return str(request.param)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def flights_count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.execute(text("SELECT COUNT(*) FROM flights")).scalar_one()
    engine.dispose()
    return int(n)


def test_copy_load_features_match_sqlite(tmp_path: Path, pg_url: str) -> None:
    raw = write_raw(tmp_path / "raw")
    sqlite_url = f"sqlite:///{tmp_path / 'f.db'}"
    frames, md5s = {}, {}
    for url, name in ((pg_url, "pg"), (sqlite_url, "lite")):
        load_tables(url, raw, PARAMS)
        load_tables(url, raw, PARAMS)  # idempotent
        engine = make_engine(url)
        train, test, _ = build_and_split(engine, fixture_params(), out=tmp_path / name)
        engine.dispose()
        frames[name] = pd.concat([train, test], ignore_index=True)
        md5s[name] = {f: md5(tmp_path / name / f) for f in ("train.parquet", "test.parquet")}
    pg, lite = frames["pg"], frames["lite"]
    # time_hour included: timestamptz and SQLite's ISO text come out as one UTC timestamp type
    pd.testing.assert_frame_equal(pg, lite)
    assert str(lite["time_hour"].dtype) == "datetime64[us, UTC]"
    assert md5s["pg"] == md5s["lite"]  # data/processed is byte-identical on both engines
    assert flights_count(pg_url) == 5


QUOTED_SCHEMA = """
CREATE TABLE "order" ("default" TEXT NOT NULL, "Amount" DOUBLE PRECISION, "select" INTEGER,
    placed TIMESTAMP WITH TIME ZONE, PRIMARY KEY ("default"));
CREATE INDEX order_amount ON "order" ("Amount");
"""


def test_quoted_names_on_both_engines(tmp_path: Path, pg_url: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame(
        {
            "default": ["a", "b", ""],
            "Amount": [1.5, None, 2.0],
            "select": [1, 2, None],
            "placed": ["2013-01-01T10:00:00Z", None, "2013-01-02T00:00:00-05:00"],
        }
    ).to_parquet(raw / "order.parquet", index=False)
    got = {}
    for url in (pg_url, f"sqlite:///{tmp_path / 'q.db'}"):
        load_tables(url, raw, PARAMS, schema_sql=QUOTED_SCHEMA)
        engine = make_engine(url)
        sql = 'SELECT "default", "Amount", "select", placed FROM "order" ORDER BY "default"'
        got[url] = canonical_frame(pd.read_sql(text(sql), engine))
        engine.dispose()
    pg, lite = got.values()
    pd.testing.assert_frame_equal(pg, lite)
    assert pg["default"].tolist() == ["", "a", "b"]  # an empty string is not NULL after COPY
    assert pg["placed"].isna().tolist() == [False, False, True]


def test_schema_error_names_the_statement(tmp_path: Path, pg_url: str) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    pd.DataFrame({"x": [1]}).to_parquet(raw / "t.parquet", index=False)
    bad = "CREATE TABLE t (x INTEGER);\nCREATE INDEX t_x ON t (x, x, x) WHERE x > 'a' COLLATE;"
    with pytest.raises(UserError, match=r"schema.sql statement 2 \(CREATE INDEX t_x ON t"):
        load_tables(pg_url, raw, PARAMS, schema_sql=bad)


def test_failed_copy_keeps_previous_tables(tmp_path: Path, pg_url: str) -> None:
    load_tables(pg_url, write_raw(tmp_path / "raw"), PARAMS)
    tables = raw_tables()
    tables["flights"] = pd.concat([tables["flights"]] * 4, ignore_index=True)
    tables["weather"] = pd.concat([tables["weather"]] * 2, ignore_index=True)  # PK violation
    with pytest.raises(UserError, match="previous tables kept"):
        load_tables(pg_url, write_raw(tmp_path / "bad", tables), PARAMS)
    assert flights_count(pg_url) == 5


def test_streamed_types_and_order_match_sqlite(tmp_path: Path, pg_url: str) -> None:
    """Columns whose type needs the whole column (a NULL in an integer, all NULL, numeric)
    and text keys with NULLs (collation, NULLS LAST): byte-identical files on both engines."""
    from tests.integration.test_features_stream import TYPED_SQL, many_flights, params

    raw = many_flights(tmp_path / "raw")
    p = params(key=["dest", "flight"])
    for url, name in ((pg_url, "pg"), (f"sqlite:///{tmp_path / 'f.db'}", "lite")):
        load_tables(url, raw, PARAMS)
        engine = make_engine(url)
        build_features(engine, p, tmp_path / name, sql=TYPED_SQL)
        engine.dispose()
    for split in ("train.parquet", "test.parquet"):
        assert md5(tmp_path / "pg" / split) == md5(tmp_path / "lite" / split)


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("distance", "far", r"raw flights\.distance: expected DOUBLE PRECISION, got .*'far'"),
        ("carrier", None, r"raw flights\.carrier: 1 NULL value\(s\) in a NOT NULL column"),
        ("flight", 2**40, r"previous tables kept: .*out of range for type integer"),
    ],
)
def test_bad_value_in_a_late_batch_rolls_back_the_copy(
    tmp_path: Path, pg_url: str, column: str, bad: object, message: str
) -> None:
    """The batches are read and validated by the COPY's producer thread while the server
    parses: a bad value in the last batch (ours, or the server's: an integer out of range)
    aborts that COPY and rolls back every table already replaced in the transaction."""
    from tests.integration.test_load import late_bad_flights

    load_tables(pg_url, write_raw(tmp_path / "raw"), PARAMS)
    tables = late_bad_flights(column, bad)
    tables["airlines"] = pd.DataFrame({"carrier": ["UA", "AA", "B6"], "name": ["u", "a", "b"]})
    written: list[str] = []
    with pytest.raises(UserError, match=message):
        load_tables(pg_url, write_raw(tmp_path / "bad", tables), PARAMS, after_table=written.append)
    assert written == ["airlines", "airports", "planes", "weather"]
    assert flights_count(pg_url) == 5
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM airlines")).scalar_one() == 2
    engine.dispose()


def test_text_survives_the_csv_copy(tmp_path: Path, pg_url: str) -> None:
    """Text with the CSV's own characters (and `\\N`, and an empty string) comes back as
    written, NULL stays NULL, on both engines."""
    raw = tmp_path / "raw"
    raw.mkdir()
    texts = ["", None, 'say "hi"', "a,b", "two\nlines", "\\N", "NULL", " pad ", "é€"]
    pd.DataFrame({"k": range(len(texts)), "s": texts}).to_parquet(raw / "t.parquet", index=False)
    schema = "CREATE TABLE t (k INTEGER NOT NULL, s TEXT);"
    for url in (pg_url, f"sqlite:///{tmp_path / 't.db'}"):
        load_tables(url, raw, PARAMS, schema_sql=schema)
        engine = make_engine(url)
        with engine.connect() as conn:
            got = [r[0] for r in conn.execute(text("SELECT s FROM t ORDER BY k"))]
        engine.dispose()
        assert got == texts


def test_the_copy_uses_the_format_under_test(
    tmp_path: Path, pg_url: str, copy_format: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    copy = db.copy_batches

    def spy(cur: object, sql: str, *args: object, **kw: object) -> int:
        sent.append(sql)
        return copy(cur, sql, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(db, "copy_batches", spy)
    load_tables(pg_url, write_raw(tmp_path / "raw"), PARAMS)
    assert len(sent) == 5
    assert all(f"FORMAT {copy_format}" in sql for sql in sent)


def test_every_portable_type_round_trips_and_an_overflow_is_one_line(
    tmp_path: Path, pg_url: str
) -> None:
    """SMALLINT/INT/BIGINT/VARCHAR(n) (what the binary COPY casts to) come back as written;
    a value outside SMALLINT names the type and keeps the previous table."""
    schema = "CREATE TABLE t (a SMALLINT, b BIGINT, c VARCHAR(5), d INT NOT NULL, e TEXT);"
    frame = pd.DataFrame(
        {"a": [1, None, -32768], "b": [2**40, None, -1], "c": ["abc", None, ""], "d": [1, 2, 3]}
    ).assign(e=["x", "y", None])
    raw = tmp_path / "raw"
    raw.mkdir()
    frame.to_parquet(raw / "t.parquet", index=False)
    load_tables(pg_url, raw, PARAMS, schema_sql=schema)
    engine = make_engine(pg_url)
    sql = text("SELECT a, b, c, d, e FROM t ORDER BY d")
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(sql)]
    expected = [(1, 2**40, "abc", 1, "x"), (None, None, None, 2, "y"), (-32768, -1, "", 3, None)]
    assert rows == expected
    frame.loc[2, "a"] = 40_000
    frame.to_parquet(raw / "t.parquet", index=False)
    overflow = r"previous tables kept: .*40000.* out of range for type smallint"
    with pytest.raises(UserError, match=overflow):
        load_tables(pg_url, raw, PARAMS, schema_sql=schema)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.execute(sql)] == rows
    engine.dispose()
