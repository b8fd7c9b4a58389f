"""The streaming half of stage features: the feature table read in bounded chunks, in key order,
with one Arrow type per column, and written as parquet in fixed row groups.

Nothing here holds the table. What needs the whole column is asked of the database before a
row is read (:func:`column_kinds`: the types SQLite stored, or PostgreSQL's column types and
NULL counts); the rows then come in `features.key` order (sorted by the database, with one
collation and NULLs last on both engines) through a server-side cursor on PostgreSQL and
`fetchmany` on SQLite, `CHUNK_ROWS` at a time.

The kinds reproduce what reading the whole table into pandas gave (so the bytes did not move):
integers stay int64 unless a NULL is present (then float64), numbers with a fraction, decimals
and mixed columns are float64, booleans are integers, text is string, SQLite's ISO text
timestamps and PostgreSQL's timestamps are UTC microseconds, an all-NULL column is null.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flightdelay.core.db import PARQUET_OPTIONS, ROW_GROUP_ROWS
from flightdelay.core.errors import UserError

CHUNK_ROWS = 50_000  # rows fetched (and converted) at a time
UTC_US = pa.timestamp("us", "UTC")
TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "text": pa.string(),
    "timestamp": UTC_US,
    "iso_text": UTC_US,  # SQLite: the loader's fixed ISO text form of a timestamp
    "null": pa.null(),
}
_ISO = "%Y-%m-%d %H:%M:%S+00:00"
_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9] [0-9][0-9]:[0-9][0-9]:[0-9][0-9]+00:00"
_REGEX = r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\+00:00$"
# PostgreSQL type oids -> kind (integers and booleans become floats when a NULL is present).
_PG_OIDS = {
    **dict.fromkeys((16, 20, 21, 23), "int"),
    **dict.fromkeys((700, 701, 1700), "float"),
    **dict.fromkeys((19, 25, 1042, 1043), "text"),
    **dict.fromkeys((1114, 1184), "timestamp"),
}
# SQLite typeof() values in sort order: MIN and MAX of typeof(column) bound what it holds.
_SQLITE_KINDS = {
    ("integer", "integer"): "int",
    ("integer", "null"): "float",
    ("integer", "real"): "float",
    ("null", "real"): "float",
    ("real", "real"): "float",
    ("null", "null"): "null",
    ("null", "text"): "text",
    ("text", "text"): "text",
}


def column_kinds(
    cur: Any, dialect: str, table: str, columns: Sequence[tuple[str, str]]
) -> dict[str, str]:
    """The kind of every column of `table` (`columns`: (name, quoted name)), from SQL only."""
    if dialect == "postgresql":
        kinds = _pg_kinds(cur, table, columns)
        text = "SELECT EXISTS (SELECT 1 FROM {t} WHERE {c} IS NOT NULL AND {c} !~ '{p}')"
        pattern = _REGEX
    else:
        kinds = _sqlite_kinds(cur, table, columns)
        text = "SELECT EXISTS (SELECT 1 FROM {t} WHERE {c} IS NOT NULL AND {c} NOT GLOB '{p}')"
        pattern = _GLOB
    for name, quoted in columns:  # text that is all ISO timestamps is a timestamp (as before)
        if kinds[name] == "text":
            cur.execute(text.format(t=table, c=quoted, p=pattern))
            if not cur.fetchone()[0]:
                kinds[name] = "iso_text"
    return kinds


def _pg_kinds(cur: Any, table: str, columns: Sequence[tuple[str, str]]) -> dict[str, str]:
    cur.execute(f"SELECT * FROM {table} LIMIT 0")
    oids = [d.type_code for d in cur.description]
    cur.execute(f"SELECT COUNT(*), {', '.join(f'COUNT({q})' for _, q in columns)} FROM {table}")
    total, *present = cur.fetchone()
    kinds = {}
    for (name, _), oid, n in zip(columns, oids, present, strict=True):
        if oid not in _PG_OIDS:
            raise UserError(
                f"features.sql: column {name} has a PostgreSQL type (oid {oid}) that SQLite "
                "does not share: CAST it to INTEGER, DOUBLE PRECISION, TEXT or a timestamp"
            )
        kind = _PG_OIDS[oid]
        if n == 0:
            kind = "null"
        elif kind == "int" and n < total:
            kind = "float"
        kinds[name] = kind
    return kinds


def _sqlite_kinds(cur: Any, table: str, columns: Sequence[tuple[str, str]]) -> dict[str, str]:
    bounds = ", ".join(f"MIN(typeof({q})), MAX(typeof({q}))" for _, q in columns)
    cur.execute(f"SELECT {bounds} FROM {table}")
    row = cur.fetchone()
    kinds = {}
    for i, (name, _) in enumerate(columns):
        low, high = row[2 * i] or "null", row[2 * i + 1] or "null"
        if (low, high) not in _SQLITE_KINDS:
            raise UserError(
                f"features.sql: column {name} mixes SQLite value types ({low} .. {high}): "
                "CAST it to one type"
            )
        kinds[name] = _SQLITE_KINDS[(low, high)]
    return kinds


def order_by(dialect: str, key: Sequence[tuple[str, str]], kinds: dict[str, str]) -> str:
    """ORDER BY `key` as pandas sorts it: text by code point (byte order), NULLs last."""
    collate = ' COLLATE "C"' if dialect == "postgresql" else ""
    return ", ".join(
        f"{q}{collate if kinds[name] in ('text', 'iso_text') else ''} ASC NULLS LAST"
        for name, q in key
    )


def fetch(dbapi: Any, dialect: str, sql: str) -> Iterator[list[Any]]:
    """The rows of `sql`, CHUNK_ROWS at a time (a server-side cursor on PostgreSQL)."""
    chunk = CHUNK_ROWS
    if dialect == "postgresql":
        cur = dbapi.cursor(name="flightdelay_features")
        cur.itersize = chunk
    else:
        cur = dbapi.cursor()
    try:
        cur.execute(sql)
        while rows := cur.fetchmany(chunk):
            yield rows
    finally:
        cur.close()


def chunk_table(
    rows: Sequence[Sequence[Any]], names: Sequence[str], kinds: dict[str, str]
) -> pa.Table:
    """Fetched rows as an Arrow table of the columns' kinds."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    arrays = [_array(values, kinds[name]) for values, name in zip(columns, names, strict=True)]
    return pa.Table.from_arrays(arrays, names=list(names))


def _array(values: Sequence[Any], kind: str) -> pa.Array:
    if kind == "null":
        return pa.nulls(len(values))
    if kind == "iso_text":
        text = pa.array(values, type=pa.string())
        return pc.strptime(text, format=_ISO, unit="us").cast(UTC_US)
    try:
        return pa.array(values, type=TYPES[kind], from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # booleans, decimals: through Python's int/float
        cast = int if kind == "int" else float
        return pa.array([None if v is None else cast(v) for v in values], type=TYPES[kind])


def schema(names: Sequence[str], kinds: dict[str, str]) -> pa.Schema:
    """The parquet schema of the splits."""
    return pa.schema([(name, TYPES[kinds[name]]) for name in names])


def key_hashes(keys: pa.Table) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """One hash per row of the key columns (NULLs hash alike, as pandas' duplicated sees them)."""
    hashes = pd.util.hash_pandas_object(keys.to_pandas(), index=False)
    return np.asarray(hashes, dtype=np.uint64)


class SplitWriter:
    """`path` written incrementally: row groups of exactly ROW_GROUP_ROWS rows (the last one
    shorter), as :func:`~flightdelay.core.db.write_parquet` writes the same rows; the file is
    written under a temporary name and only `commit` puts it in place."""

    def __init__(self, path: Path, arrow_schema: pa.Schema) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")
        self.writer = pq.ParquetWriter(self.tmp, arrow_schema, **PARQUET_OPTIONS)
        self.schema, self.buffered, self.rows = arrow_schema, 0, 0
        self.parts: list[pa.Table] = []

    def write(self, table: pa.Table) -> None:
        """Append rows; a full row group goes to the file."""
        self.parts.append(table)
        self.buffered += table.num_rows
        self.rows += table.num_rows
        while self.buffered >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        pending = pa.concat_tables(self.parts) if self.parts else self.schema.empty_table()
        pending = pending.combine_chunks()
        self.writer.write_table(pending.slice(0, rows), row_group_size=ROW_GROUP_ROWS)
        self.parts, self.buffered = [pending.slice(rows)], pending.num_rows - rows

    def close(self) -> None:
        """Write the last (short) row group and close the file (still under its temporary name)."""
        if self.buffered or not self.rows:
            self._flush(self.buffered)
        self.writer.close()

    def commit(self) -> None:
        """Put the finished file in place."""
        self.tmp.replace(self.path)

    def abort(self) -> None:
        """Close and remove the temporary file."""
        self.writer.close()
        self.tmp.unlink(missing_ok=True)
