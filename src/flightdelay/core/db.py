"""Database access: engines, the SQL files, the DDL model and the fast bulk load.

One code path for SQLite and PostgreSQL; only the bulk write differs (COPY vs executemany).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from flightdelay.core.errors import UserError

_CREATE = re.compile(r"CREATE\s+TABLE\s+(\w+)\s*\((.*?)\);", re.S | re.I)
_CREATE_ANY = re.compile(r"CREATE\s+(?:UNIQUE\s+)?(?:TABLE|INDEX)\b.*?;", re.S | re.I)
_INDEX_ON = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+\w+\s+ON\s+(\w+)", re.I)


def read_sql(name: str) -> str:
    """The text of `flightdelay/sql/<name>` (packaged with the code), `--` comments removed
    (SQLAlchemy would read a `:name` inside a comment as a bind parameter)."""
    text = resources.files("flightdelay.sql").joinpath(name).read_text()
    return re.sub(r"--[^\n]*", "", text)


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


@dataclass(frozen=True)
class Column:
    """One column of a CREATE TABLE: name, SQL type, whether NULL is allowed."""

    name: str
    sql_type: str
    nullable: bool

    @property
    def kind(self) -> str:
        """`int`, `float`, `timestamp` or `text`."""
        t = self.sql_type.upper()
        if "INT" in t:
            return "int"
        if any(k in t for k in ("DOUBLE", "REAL", "FLOAT", "NUMERIC")):
            return "float"
        if "TIMESTAMP" in t:
            return "timestamp"
        return "text"


@dataclass(frozen=True)
class TableDDL:
    """A table of schema.sql: its name, columns and the statements that create it."""

    name: str
    columns: tuple[Column, ...]
    statements: tuple[str, ...]


def parse_schema(sql: str) -> dict[str, TableDDL]:
    """Split schema.sql into tables (with their CREATE INDEX statements), in file order."""
    tables: dict[str, list[str]] = {}
    columns: dict[str, tuple[Column, ...]] = {}
    for stmt in _CREATE_ANY.findall(sql):
        m = _CREATE.match(stmt.strip())
        if m:
            name, body = m.group(1), m.group(2)
            columns[name] = tuple(_parse_columns(body))
            tables[name] = [stmt.strip().rstrip(";")]
            continue
        idx = _INDEX_ON.search(stmt)
        if not idx or idx.group(1) not in tables:
            raise UserError(f"schema.sql: index on an unknown table: {stmt.strip()[:60]}")
        tables[idx.group(1)].append(stmt.strip().rstrip(";"))
    return {n: TableDDL(n, columns[n], tuple(s)) for n, s in tables.items()}


def _parse_columns(body: str) -> Iterator[Column]:
    depth, part, parts = 0, "", []
    for ch in body:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(part)
            part = ""
        else:
            part += ch
    parts.append(part)
    for raw in parts:
        words = raw.split()
        if not words or words[0].upper() in ("PRIMARY", "UNIQUE", "CONSTRAINT", "FOREIGN", "CHECK"):
            continue
        rest = " ".join(words[1:])
        nullable = "NOT NULL" not in rest.upper()
        sql_type = re.split(
            r"\s+(?:NOT\s+NULL|NULL|DEFAULT|PRIMARY|REFERENCES)\b", rest, flags=re.I
        )[0]
        yield Column(words[0], sql_type.strip(), nullable)


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
    conn: Any, dialect: str, table: str, data: pa.Table, chunk_rows: int, progress: Progress
) -> None:
    """Append `data` (columns already in table order and DB types) to `table`.

    PostgreSQL: COPY ... FROM STDIN (CSV written by pyarrow) per chunk. SQLite: executemany.
    """
    cols = ", ".join(data.column_names)
    cur = conn.cursor()
    if dialect == "postgresql":
        sql = f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER false)"
        opts = pacsv.WriteOptions(include_header=False, quoting_style="needed")
        for batch in data.to_batches(max_chunksize=chunk_rows):
            buf = io.BytesIO()
            pacsv.write_csv(pa.Table.from_batches([batch]), buf, write_options=opts)
            buf.seek(0)
            cur.copy_expert(sql, buf)
            progress(batch.num_rows)
    else:
        marks = ", ".join("?" for _ in data.column_names)
        sql = f"INSERT INTO {table} ({cols}) VALUES ({marks})"
        for batch in data.to_batches(max_chunksize=chunk_rows):
            columns = [c.to_pylist() for c in batch.columns]
            cur.executemany(sql, zip(*columns, strict=True))
            progress(batch.num_rows)
    cur.close()
