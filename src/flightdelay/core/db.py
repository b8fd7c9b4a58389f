"""Database access: engines, the SQL files, the DDL model, the bulk load and parquet output.

One code path for SQLite and PostgreSQL; only the bulk write differs (COPY vs executemany).
schema.sql is read by executing it in an in-memory SQLite database and reflecting the tables
(`PRAGMA table_info`), so quoted identifiers, reserved words and any spacing work; only types
that mean the same on both engines are accepted.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from flightdelay.core.errors import UserError

# Declared type -> kind. Only types with the same meaning (and Python values) on both engines:
# REAL is 4 bytes on PostgreSQL, NUMERIC comes back as Decimal, BOOLEAN is an integer in SQLite.
_KINDS = {
    "TEXT": "text",
    "VARCHAR": "text",
    "INTEGER": "int",
    "INT": "int",
    "BIGINT": "int",
    "SMALLINT": "int",
    "DOUBLE PRECISION": "float",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "TIMESTAMPTZ": "timestamp",
}
_TYPES_HELP = (
    "TEXT, VARCHAR(n), INTEGER, BIGINT, SMALLINT, DOUBLE PRECISION, TIMESTAMP WITH TIME ZONE"
)
_ALLOWED = re.compile(r"^CREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX)\b", re.I)
_LEXEME = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|;|[^'\";/-]+|.", re.S)


def _lex(sql: str) -> Iterator[str]:
    """Quoted strings/identifiers, comments, `;` and everything else, in order."""
    return (m.group(0) for m in _LEXEME.finditer(sql))


def strip_comments(sql: str) -> str:
    """`sql` without `--` and `/* */` comments (quoted text is left alone)."""
    return "".join(" " if t.startswith(("--", "/*")) else t for t in _lex(sql))


def split_statements(sql: str) -> list[str]:
    """The statements of a SQL script (comments removed, `;` inside quotes respected)."""
    out, part = [], ""
    for tok in _lex(strip_comments(sql)):
        if tok == ";":
            out.append(part.strip())
            part = ""
        else:
            part += tok
    out.append(part.strip())
    return [s for s in out if s]


def one_line(statement: str, width: int = 70) -> str:
    """A statement on one line, shortened to `width` characters."""
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def read_sql(name: str) -> str:
    """The text of `flightdelay/sql/<name>` (packaged with the code), comments removed
    (SQLAlchemy would read a `:name` inside a comment as a bind parameter)."""
    return strip_comments(resources.files("flightdelay.sql").joinpath(name).read_text())


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for DATABASE_URL; creates the folder of a SQLite file."""
    try:
        parsed = make_url(url)
    except Exception:
        raise UserError(f"DATABASE_URL is not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UserError(f"DATABASE_URL: unsupported database {parsed.get_backend_name()!r}")
    engine = create_engine(parsed)
    if parsed.get_backend_name() == "sqlite":
        _transactional_sqlite(engine)
    return engine


def _transactional_sqlite(engine: Engine) -> None:
    """Make pysqlite honour transactions for DDL too (SQLAlchemy's documented recipe)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def quote(engine: Engine, name: str) -> str:
    """`name` as an identifier of the engine's dialect (quoted when needed)."""
    return str(engine.dialect.identifier_preparer.quote(name))


def check_case(source: str, what: str, name: str, sql: str) -> None:
    """PostgreSQL folds unquoted names to lower case, SQLite keeps them: a name with capitals
    must be written quoted, or the two engines disagree on it."""
    if name != name.lower() and f'"{name}"' not in sql:
        raise UserError(
            f'{source}: {what} {name} has capitals but is not quoted: write "{name}" '
            f"(PostgreSQL folds unquoted names to {name.lower()})"
        )


@dataclass(frozen=True)
class Column:
    """One column of a CREATE TABLE: name, SQL type, whether NULL is allowed."""

    name: str
    sql_type: str
    nullable: bool

    @property
    def kind(self) -> str:
        """`int`, `float`, `timestamp` or `text`."""
        base = re.sub(r"\s*\(.*\)\s*$", "", " ".join(self.sql_type.upper().split()))
        return _KINDS[base]


@dataclass(frozen=True)
class TableDDL:
    """A table of schema.sql: its name (as the database spells it) and columns."""

    name: str
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Schema:
    """schema.sql: its tables in file order and its statements, to run as they are."""

    tables: dict[str, TableDDL]
    statements: tuple[str, ...]


def read_schema(sql: str, source: str = "schema.sql") -> Schema:
    """Execute the DDL in an in-memory SQLite database and reflect its tables.

    Raises UserError naming `source` and the failing statement (or table/column) for a
    statement SQLite rejects, a statement other than CREATE TABLE/INDEX, a type outside the
    portable set, or a capitalised name that is not quoted.
    """
    statements = split_statements(sql)
    with closing(sqlite3.connect(":memory:")) as conn:
        for i, stmt in enumerate(statements, 1):
            if not _ALLOWED.match(stmt):
                raise UserError(
                    f"{source} statement {i} ({one_line(stmt, 40)}): only CREATE TABLE and "
                    "CREATE INDEX belong in the schema"
                )
            try:
                conn.execute(stmt)
            except sqlite3.Error as exc:
                raise UserError(f"{source} statement {i} ({one_line(stmt)}): {exc}") from None
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        tables = {n: _reflect(conn, n, source, sql) for n in names}
    if not tables:
        raise UserError(f"{source}: no CREATE TABLE statement")
    return Schema(tables, tuple(statements))


def _reflect(conn: sqlite3.Connection, table: str, source: str, sql: str) -> TableDDL:
    check_case(source, "table", table, sql)
    columns = []
    for _cid, name, decl, notnull, _default, _pk in conn.execute(
        "SELECT * FROM pragma_table_info(?)", (table,)
    ):
        col = Column(name, decl, not notnull)
        check_case(source, "column", f"{name}", sql)
        try:
            col.kind  # noqa: B018 - validate now, not at load time
        except KeyError:
            raise UserError(
                f"{source}: {table}.{name} has type {decl or '(none)'}; use one of "
                f"{_TYPES_HELP} (same meaning on SQLite and PostgreSQL)"
            ) from None
        columns.append(col)
    return TableDDL(table, tuple(columns))


# --------------------------------------------------------------------------------------------
# bulk load: one transaction per call, so a failure leaves the previous tables as they were
# --------------------------------------------------------------------------------------------

Progress = Callable[[int], object]


@contextmanager
def raw_transaction(engine: Engine) -> Iterator[Any]:
    """The DBAPI connection of one transaction (DDL included): committed, or rolled back."""
    with engine.begin() as conn:
        yield conn.connection.dbapi_connection


def bulk_insert(
    conn: Any, engine: Engine, table: str, data: pa.Table, chunk_rows: int, progress: Progress
) -> None:
    """Append `data` (columns already in table order and DB types) to `table`, in batches of
    `chunk_rows` rows (see `insert_batches`)."""
    batches = data.to_batches(max_chunksize=chunk_rows)
    insert_batches(conn, engine, table, data.column_names, batches, progress)


def insert_batches(
    conn: Any,
    engine: Engine,
    table: str,
    columns: list[str],
    batches: Iterable[pa.RecordBatch],
    progress: Progress,
) -> int:
    """Append `batches` (each with `columns`, in DB types) to `table`; returns the rows written.

    `batches` is pulled lazily, one at a time, so it may be a generator that reads and converts
    as it goes (only a batch is in memory; an exception it raises aborts the insert and is
    raised here, the caller's transaction rolls back). PostgreSQL: ONE `COPY ... FROM STDIN`
    per table, fed through a pipe by a thread that pulls each batch and encodes it: the next
    batch is read and encoded while the server stores the previous one. The encoding is COPY's
    binary format (pgpq, from Arrow: nothing for the server to parse) when pgpq is installed and
    every column's type is one `_PG_ARROW` knows, each batch cast to the column types first
    (an integer out of range is a ValueError naming the column); CSV otherwise (written by
    Arrow, text quoted so an empty string stays distinct from NULL). SQLite: executemany per
    batch.
    """
    cols = ", ".join(quote(engine, c) for c in columns)
    target = quote(engine, table)
    cur = conn.cursor()
    try:
        if engine.dialect.name == "postgresql":
            types = _binary_types(cur, target, columns)
            if types is not None:
                sql = f"COPY {target} ({cols}) FROM STDIN WITH (FORMAT binary)"
                cast = (_binary_ready(table, b, types) for b in batches)
                return copy_batches(cur, sql, cast, progress, encoder=_BinaryEncoder(types))
            sql = f"COPY {target} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER false)"
            return copy_batches(cur, sql, batches, progress)
        marks = ", ".join("?" for _ in columns)
        sql = f"INSERT INTO {target} ({cols}) VALUES ({marks})"
        rows = 0
        for batch in batches:
            cur.executemany(sql, zip(*(c.to_pylist() for c in batch.columns), strict=True))
            rows += batch.num_rows
            progress(batch.num_rows)
        return rows
    finally:
        cur.close()


# "needed": every string value is quoted (an empty string is `""`, a NULL is nothing), numbers
# and timestamps are written bare (less to write and for the server to parse than all quoted).
_CSV = pacsv.WriteOptions(include_header=False, quoting_style="needed")
_PIPE_BYTES = 1 << 20


def _zoned_as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` with its zone-aware timestamps as text, `YYYY-MM-DD HH:MM:SS[.ffffff]Z` (the UTC
    wall clock: what the CSV writer would write, ~8x faster than its zone-aware formatting)."""
    columns = list(batch.columns)
    for i, field in enumerate(batch.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            wall = columns[i].cast(pa.timestamp(field.type.unit)).cast(pa.string())
            columns[i] = pc.binary_join_element_wise(wall, "Z", "")
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


class _Aborted(Exception):
    """Raised into the COPY (as a read error) when the producer failed: the server aborts the
    COPY instead of committing the rows sent so far."""


class _CsvEncoder:
    """COPY's CSV format, written by Arrow."""

    def header(self) -> bytes:
        return b""

    def batch(self, batch: pa.RecordBatch) -> Any:
        out = pa.BufferOutputStream()
        pacsv.write_csv(_zoned_as_text(batch), out, write_options=_CSV)
        return memoryview(out.getvalue())

    def finish(self) -> bytes:
        return b""


# Column type (as format_type spells it) -> the Arrow type pgpq encodes as that type's binary
# form. A column of any other type makes the COPY use CSV.
_PG_ARROW = {
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "double precision": pa.float64(),
    "text": pa.string(),
    "character varying": pa.string(),
    "timestamp with time zone": pa.timestamp("us", "UTC"),
}


def _binary_types(cur: Any, target: str, columns: list[str]) -> dict[str, pa.DataType] | None:
    """The Arrow type of each of `columns` of table `target` (quoted) for a binary COPY, or
    None: pgpq is not installed, or a column has a type `_PG_ARROW` does not know."""
    if importlib.util.find_spec("pgpq") is None:
        return None
    cur.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (target,),
    )
    declared = dict(cur.fetchall())
    types = {c: _PG_ARROW.get(declared.get(c, "")) for c in columns}
    if any(t is None for t in types.values()):
        return None
    return {c: t for c, t in types.items() if t is not None}


def _binary_ready(
    table: str, batch: pa.RecordBatch, types: dict[str, pa.DataType]
) -> pa.RecordBatch:
    """`batch` cast to the column types of a binary COPY; an integer out of the column's range
    (or any value the cast refuses) is a ValueError naming the column and the value, as the
    server's own error would in CSV."""
    arrays = []
    for name, values in zip(batch.schema.names, batch.columns, strict=True):
        to = types[name]
        try:
            arrays.append(values.cast(to))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            both_int = pa.types.is_integer(values.type) and pa.types.is_integer(to)
            why = "is out of range for type" if both_int else "cannot be stored as type"
            pg_type = _PG_NAME.get(str(to), str(to))
            raise ValueError(
                f"{table}.{name}: value {_out_of(values, to)} {why} {pg_type}"
            ) from None
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


_PG_NAME = {"int16": "smallint", "int32": "integer", "int64": "bigint"}


def _out_of(values: pa.Array, to: pa.DataType) -> str:
    """The first value of `values` that does not cast to `to` (for the message)."""
    for v in values:
        try:
            pa.array([v.as_py()], type=values.type).cast(to)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return repr(v.as_py())
    return "?"


class _BinaryEncoder:
    """COPY's binary format, encoded from Arrow by pgpq (columns cast by `_binary_ready`)."""

    def __init__(self, types: dict[str, pa.DataType]) -> None:
        import pgpq

        self.encoder = pgpq.ArrowToPostgresBinaryEncoder(pa.schema(list(types.items())))

    def header(self) -> bytes:
        return bytes(self.encoder.write_header())

    def batch(self, batch: pa.RecordBatch) -> Any:
        return self.encoder.write_batch(batch)

    def finish(self) -> bytes:
        return bytes(self.encoder.finish())


def copy_batches(
    cur: Any,
    sql: str,
    batches: Iterable[pa.RecordBatch],
    progress: Progress,
    encoder: _CsvEncoder | _BinaryEncoder | None = None,
) -> int:
    """Run `sql` (a COPY FROM STDIN, in CSV unless `encoder` is another format's) on psycopg2
    cursor `cur`, streaming `batches` (pulled and encoded in a producer thread); returns the
    rows sent. An exception raised by `batches` (or the encoder) is raised here, after the COPY
    was aborted."""
    encode = encoder or _CsvEncoder()
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # a larger pipe: fewer switches (Linux only)
        fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), _PIPE_BYTES)
    failed: list[BaseException] = []
    sent = [0]

    def produce() -> None:
        with os.fdopen(write_fd, "wb", buffering=0) as sink:
            try:
                _write_all(sink, encode.header())
                for batch in batches:
                    _write_all(sink, encode.batch(batch))
                    sent[0] += batch.num_rows
                    progress(batch.num_rows)
                _write_all(sink, encode.finish())
            except BrokenPipeError:
                pass  # COPY failed and closed the pipe: its error is the one raised
            except BaseException as exc:
                failed.append(exc)  # before the pipe closes: the reader sees it at the end

    thread = threading.Thread(target=produce, name="copy-csv", daemon=True)
    thread.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            cur.copy_expert(sql, _Source(pipe, failed), size=_PIPE_BYTES)
    except Exception:
        if not failed:
            raise
    finally:
        thread.join()
    if failed:
        raise failed[0]
    return sent[0]


def _write_all(sink: Any, data: Any) -> None:
    """Write all of `data` (a pipe write may be partial)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[sink.write(view) :]


class _Source:
    """The read end of the pipe for copy_expert; at the end of the data, a failed producer
    makes the read raise, so psycopg2 ends the COPY with an error (nothing half-sent is kept)."""

    def __init__(self, pipe: Any, failed: list[BaseException]) -> None:
        self.pipe, self.failed = pipe, failed

    def read(self, size: int = -1) -> bytes:
        chunk = self.pipe.read(size)
        if not chunk and self.failed:
            raise _Aborted("the rows could not be read")
        return chunk  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# parquet output: the same rows and types give the same bytes
# --------------------------------------------------------------------------------------------


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """`frame` as an Arrow table without its index (zone-aware timestamps stored as UTC)."""
    arrays = [
        pa.array(s.dt.tz_convert(None).to_numpy(), type=pa.timestamp("us", "UTC"), from_pandas=True)
        if isinstance(s.dtype, pd.DatetimeTZDtype)
        else pa.Array.from_pandas(s)
        for _, s in frame.items()
    ]
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


ROW_GROUP_ROWS = 1 << 20  # rows per parquet row group: fixed, so the bytes depend on the rows only
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "data_page_version": "1.0",
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "store_schema": False,
}


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write `table` with fixed writer options and no schema metadata (no pandas block that
    records versions or index), atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(
        table.replace_schema_metadata(None), tmp, row_group_size=ROW_GROUP_ROWS, **PARQUET_OPTIONS
    )
    tmp.replace(path)
