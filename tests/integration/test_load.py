"""The load stage: idempotent, atomic, and strict about bad raw data."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import inspect, text

from flightdelay.core.config import LoadParams
from flightdelay.core.db import make_engine, read_schema, read_sql
from flightdelay.core.errors import UserError
from flightdelay.pipeline.load import load_tables, raw_batches, read_raw, to_arrow
from tests.fixtures import raw_tables, write_raw

PARAMS = LoadParams(progress_min_rows=10**6, chunk_rows=2)


def counts(url: str) -> dict[str, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        out = {n: conn.execute(text(f"SELECT COUNT(*) FROM {n}")).scalar_one() for n in names}
    engine.dispose()
    return out


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def test_twice_gives_same_counts(tmp_path: Path, url: str) -> None:
    raw = write_raw(tmp_path / "raw")
    report = load_tables(url, raw, PARAMS)
    first = counts(url)
    load_tables(url, raw, PARAMS)
    assert counts(url) == first
    assert first == {"airlines": 2, "airports": 2, "planes": 1, "weather": 1, "flights": 5}
    assert report["tables"]["flights"]["rows"] == 5


def test_error_mid_load_keeps_previous_tables(tmp_path: Path, url: str) -> None:
    load_tables(url, write_raw(tmp_path / "raw"), PARAMS)
    before = counts(url)
    bigger = raw_tables()
    bigger["airlines"] = pd.concat([bigger["airlines"]] * 1).assign(carrier=["UA", "AA"])
    bigger["flights"] = pd.concat([bigger["flights"]] * 3, ignore_index=True)
    raw2 = write_raw(tmp_path / "raw2", bigger)

    def crash(table: str) -> None:
        if table == "weather":  # airlines..weather already replaced inside the transaction
            raise RuntimeError("disk on fire")

    with pytest.raises(UserError, match="previous tables kept: disk on fire"):
        load_tables(url, raw2, PARAMS, after_table=crash)
    assert counts(url) == before


def test_duplicate_primary_key_fails_cleanly(tmp_path: Path, url: str) -> None:
    load_tables(url, write_raw(tmp_path / "raw"), PARAMS)
    before = counts(url)
    tables = raw_tables()
    tables["airlines"] = pd.DataFrame({"carrier": ["UA", "UA"], "name": ["a", "b"]})
    with pytest.raises(UserError, match="previous tables kept"):
        load_tables(url, write_raw(tmp_path / "dup", tables), PARAMS)
    assert counts(url) == before


def test_missing_column_writes_nothing(tmp_path: Path, url: str) -> None:
    tables = raw_tables()
    tables["flights"] = tables["flights"].drop(columns=["sched_dep_time"])
    with pytest.raises(UserError, match=r"raw flights: missing column\(s\) sched_dep_time"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)
    assert counts(url) == {}


def test_wrong_type_writes_nothing(tmp_path: Path, url: str) -> None:
    tables = raw_tables()
    tables["flights"]["distance"] = ["far"] * len(tables["flights"])
    with pytest.raises(UserError, match=r"raw flights\.distance: expected DOUBLE PRECISION"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)
    assert counts(url) == {}


def test_null_in_not_null_column(tmp_path: Path, url: str) -> None:
    tables = raw_tables()
    tables["flights"].loc[0, "carrier"] = None
    with pytest.raises(UserError, match=r"raw flights\.carrier: 1 NULL"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)


def test_report_is_byte_stable_without_timings(tmp_path: Path, url: str) -> None:
    raw = write_raw(tmp_path / "raw")
    first = load_tables(url, raw, PARAMS)
    assert "seconds" not in json.dumps(first)
    assert first == load_tables(url, raw, PARAMS)
    assert set(first) == {"database_url", "tables"}
    assert first["tables"] == {
        n: {"rows": r}
        for n, r in {"airlines": 2, "airports": 2, "planes": 1, "weather": 1, "flights": 5}.items()
    }


def test_raw_file_without_a_table_names_the_params_key(tmp_path: Path, url: str) -> None:
    tables = raw_tables()
    tables["custmers"] = pd.DataFrame({"x": [1]})
    with pytest.raises(UserError, match=r"params.yaml get_data: table\(s\) custmers not in schema"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)
    assert counts(url) == {}


def test_table_without_a_raw_file_names_the_table(tmp_path: Path, url: str) -> None:
    tables = raw_tables()
    del tables["planes"]
    with pytest.raises(UserError, match=r"schema.sql table 'planes' has no raw file .*get_data"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)
    assert counts(url) == {}


def test_bad_schema_is_one_line_before_the_database_is_touched(tmp_path: Path, url: str) -> None:
    raw = write_raw(tmp_path / "raw")
    with pytest.raises(UserError, match=r"schema.sql: flights.distance has type REAL"):
        load_tables(url, raw, PARAMS, schema_sql="CREATE TABLE flights (distance REAL);")
    assert counts(url) == {}


MIXED_SCHEMA = """
CREATE TABLE t (n INTEGER, x DOUBLE PRECISION, s TEXT, at TIMESTAMP WITH TIME ZONE NOT NULL,
    naive TIMESTAMP WITH TIME ZONE, digits DOUBLE PRECISION);
"""


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_arrow_cast_equals_the_pandas_conversion(dialect: str) -> None:
    """The raw parquet is cast in Arrow; a column Arrow cannot cast goes through pandas. Both
    give what pandas alone gave: integral floats as integers, NULLs kept, empty text kept,
    zones honoured, a time without a zone read as UTC, text of numbers parsed."""
    frame = pd.DataFrame(
        {
            "n": [1.0, None, 3.0],
            "x": [1, 2, None],
            "s": ["", None, "b"],
            "at": ["2013-01-01T10:00:00Z", "2013-01-02T00:00:00-05:00", "2013-06-01T12:30:00Z"],
            "naive": ["2013-01-01 10:00:00", None, "2013-01-03 00:00:00"],
            "digits": ["1.5", "2", None],
        }
    )
    ddl = read_schema(MIXED_SCHEMA).tables["t"]
    from_arrow = to_arrow(ddl, pa.Table.from_pandas(frame, preserve_index=False), dialect)
    assert from_arrow.equals(to_arrow(ddl, frame, dialect))
    assert from_arrow.column("n").to_pylist() == [1, None, 3]
    assert from_arrow.column("s").to_pylist() == ["", None, "b"]
    at = from_arrow.column("at").to_pylist()
    if dialect == "sqlite":
        assert at[1] == "2013-01-02 05:00:00+00:00"
    else:
        assert at[1].isoformat() == "2013-01-02T05:00:00+00:00"


def test_fraction_in_an_integer_column_is_named_after_the_arrow_cast(tmp_path: Path) -> None:
    ddl = read_schema(MIXED_SCHEMA).tables["t"]
    data = pa.table({"n": [1.5], "x": [1.0], "s": ["a"], "at": ["2013-01-01T00:00:00Z"]})
    data = data.append_column("naive", pa.nulls(1)).append_column("digits", pa.nulls(1))
    with pytest.raises(UserError, match=r"raw t.n: expected INTEGER, got values like \['1.5'\]"):
        to_arrow(ddl, data, "sqlite")


def late_bad_flights(
    column: str, bad: object, rows: int = 9, at: tuple[int, ...] = (8,)
) -> dict[str, pd.DataFrame]:
    """The fixture tables with `rows` flights (several batches of PARAMS.chunk_rows) whose
    `column` holds `bad` only in the rows `at` (the last batch by default); a text `bad` makes
    the column text (the other rows then hold numbers as text, which convert)."""
    tables = raw_tables()
    flights = pd.concat([tables["flights"]] * 2, ignore_index=True).iloc[:rows].copy()
    flights["flight"] = range(1, rows + 1)
    values = flights[column].astype(str if isinstance(bad, str) else object)
    for i in at:
        values.iloc[i] = bad
    flights[column] = values
    tables["flights"] = flights
    return tables


@pytest.mark.parametrize(
    ("column", "bad", "message"),
    [
        ("distance", "far", r"raw flights\.distance: expected DOUBLE PRECISION, got .*'far'"),
        ("flight", 1.5, r"raw flights\.flight: expected INTEGER, got values like \['1.5'\]"),
        ("carrier", None, r"raw flights\.carrier: 1 NULL value\(s\) in a NOT NULL column"),
    ],
)
def test_bad_value_in_a_late_batch_keeps_every_previous_table(
    tmp_path: Path, url: str, column: str, bad: object, message: str
) -> None:
    """Each file is validated batch by batch while it is written: a bad value in the last batch
    of the last table is found after every other table was replaced inside the transaction,
    and rolls all of them back, with the same message as an up-front check."""
    load_tables(url, write_raw(tmp_path / "raw"), PARAMS)
    before = counts(url)
    tables = late_bad_flights(column, bad)
    tables["airlines"] = pd.DataFrame({"carrier": ["UA", "AA", "B6"], "name": ["u", "a", "b"]})
    written: list[str] = []
    with pytest.raises(UserError, match=message):
        load_tables(url, write_raw(tmp_path / "bad", tables), PARAMS, after_table=written.append)
    assert written == ["airlines", "airports", "planes", "weather"]  # replaced, then rolled back
    assert counts(url) == before


def test_null_count_is_over_the_whole_file(tmp_path: Path, url: str) -> None:
    """The first batch with a NULL stops the load; the message counts every NULL of the file."""
    tables = late_bad_flights("origin", None, rows=9, at=(5, 6, 8))
    with pytest.raises(UserError, match=r"raw flights\.origin: 3 NULL value\(s\)"):
        load_tables(url, write_raw(tmp_path / "raw", tables), PARAMS)
    assert counts(url) == {}


def test_streamed_batches_equal_the_whole_file(tmp_path: Path) -> None:
    """`raw_batches` (what the load writes) gives batches of at most chunk_rows rows whose
    concatenation is `read_raw`'s table, on both dialects; columns outside the DDL are not read."""
    tables = late_bad_flights("dep_time", 600.0, rows=9)
    tables["flights"]["extra"] = "not in the schema"
    raw = write_raw(tmp_path / "raw", tables)
    schema = read_schema(read_sql("schema.sql"))
    for dialect in ("sqlite", "postgresql"):
        whole = read_raw(raw, schema, dialect)["flights"]
        batches = list(raw_batches(raw / "flights.parquet", schema.tables["flights"], dialect, 4))
        assert [b.num_rows for b in batches] == [4, 4, 1]
        assert pa.Table.from_batches(batches).equals(whole)
        assert "extra" not in whole.column_names


def test_unreadable_raw_file_is_one_line_before_the_database_is_touched(
    tmp_path: Path, url: str
) -> None:
    raw = write_raw(tmp_path / "raw")
    (raw / "planes.parquet").write_bytes(b"not parquet")
    with pytest.raises(UserError, match=r"raw planes: .*planes.parquet is not a readable parquet"):
        load_tables(url, raw, PARAMS)
    assert counts(url) == {}
