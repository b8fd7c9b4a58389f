"""Stage load: create the tables of sql/schema.sql in DATABASE_URL and load data/raw into them.

Before the database is touched, the raw folder is checked against the schema (one file per
table, every DDL column present in the file's parquet schema). The tables are then dropped,
re-created and filled inside ONE transaction (DDL included, on both engines), each raw file
streamed in batches of `load.chunk_rows` rows: a batch is read, validated against the DDL
(values of the declared type, no NULL in a NOT NULL column) and written before the next one
is read, so memory holds a batch, not the data. A bad value in any batch, or any other failure,
raises one line and rolls back to the previous complete tables; a re-run gives the same result
(idempotent).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import Engine
from tqdm import tqdm

from flightdelay.core.config import LoadParams, get_pipeline_settings, load_params, mask_url
from flightdelay.core.db import (
    Column,
    Schema,
    TableDDL,
    insert_batches,
    make_engine,
    one_line,
    quote,
    raw_transaction,
    read_schema,
    read_sql,
)
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)

# A hook called after each table is written inside the transaction (tests inject failures here).
AfterTable = Callable[[str], None]


def to_arrow(table: TableDDL, data: pd.DataFrame | pa.Table, dialect: str) -> pa.Table:
    """The DDL columns of `data` (a frame or an Arrow table), converted to the declared types,
    as an Arrow table.

    Arrow input is cast column by column in Arrow (no Python objects); a column Arrow cannot
    cast (text of numbers, timestamps without a zone...) goes through pandas as a frame does.
    Raises UserError naming the table and column for a missing column, a value of the wrong
    type, or a NULL in a NOT NULL column.
    """
    names = data.column_names if isinstance(data, pa.Table) else list(data.columns)
    missing = [c.name for c in table.columns if c.name not in names]
    if missing:
        raise UserError(f"raw {table.name}: missing column(s) {', '.join(missing)}")
    arrays = {c.name: _column(table.name, c, data, dialect) for c in table.columns}
    bad = _null_in_not_null(table, arrays)
    if bad:
        raise _null_error(table, bad, arrays[bad.name].null_count)
    return pa.table(arrays)


def _null_in_not_null(table: TableDDL, arrays: dict[str, pa.Array]) -> Column | None:
    """The first NOT NULL column of `table` with a NULL in `arrays`, if any."""
    return next((c for c in table.columns if not c.nullable and arrays[c.name].null_count), None)


def _null_error(table: TableDDL, col: Column, nulls: int) -> UserError:
    return UserError(f"raw {table.name}.{col.name}: {nulls} NULL value(s) in a NOT NULL column")


def _column(table: str, col: Column, data: pd.DataFrame | pa.Table, dialect: str) -> pa.Array:
    if isinstance(data, pa.Table):
        values = data.column(col.name).combine_chunks()
        fast = _cast(col, values, dialect)
        if fast is not None:
            return fast
        return _convert(table, col, values.to_pandas(types_mapper=_NULLABLE.get), dialect)
    return _convert(table, col, data[col.name], dialect)


_NULLABLE = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
_FAST = {
    "int": (pa.types.is_integer, pa.types.is_floating, pa.types.is_null),
    "float": (pa.types.is_integer, pa.types.is_floating, pa.types.is_null),
    "text": (pa.types.is_string, pa.types.is_large_string, pa.types.is_null),
    "timestamp": (pa.types.is_string, pa.types.is_large_string, pa.types.is_timestamp),
}
_TARGET = {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}


def _cast(col: Column, values: pa.Array, dialect: str) -> pa.Array | None:
    """`values` cast in Arrow to the column's kind, or None when only pandas can say."""
    if not any(test(values.type) for test in _FAST[col.kind]):
        return None
    try:
        if col.kind != "timestamp":
            return values.cast(_TARGET[col.kind])  # safe: a fraction or NaN is no integer
        ts = values.cast(pa.timestamp("s", "UTC"))  # ISO 8601 text with its zone, or a time
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return _sqlite_text(ts) if dialect == "sqlite" else ts


def _sqlite_text(ts: pa.Array) -> pa.Array:
    """Timestamps (whole seconds, UTC) as SQLite's one text form `YYYY-MM-DD HH:MM:SS+00:00`:
    the UTC wall clock cast to text, then the zone appended (strftime with a zone is ~10x
    slower)."""
    wall = ts.cast(pa.timestamp("s")).cast(pa.string())
    return pc.binary_join_element_wise(wall, "+00:00", "")


def _convert(table: str, col: Column, s: pd.Series, dialect: str) -> pa.Array:
    try:
        if col.kind == "int":
            return pa.array(s.astype("Int64"), type=pa.int64())
        if col.kind == "float":
            return pa.array(pd.to_numeric(s, errors="raise").astype("float64"), from_pandas=True)
        if col.kind == "timestamp":
            parsed = pd.to_datetime(s, utc=True, format="ISO8601")
            naive_utc = parsed.dt.tz_convert(None).to_numpy()
            ts = pa.array(naive_utc).cast(pa.timestamp("s")).cast(pa.timestamp("s", "UTC"))
            # SQLite has no timestamp type: store one fixed ISO text form so joins match.
            return _sqlite_text(ts) if dialect == "sqlite" else ts
        return pa.array(s.astype("string").astype(object).where(s.notna(), None), type=pa.string())
    except (ValueError, TypeError, pa.ArrowInvalid) as exc:
        sample = s.dropna().astype(str).head(1).tolist()
        raise UserError(
            f"raw {table}.{col.name}: expected {col.sql_type}, got values like {sample[:1]} "
            f"({str(exc).splitlines()[0][:80]})"
        ) from None


def raw_files(raw_dir: Path, schema: Schema) -> dict[str, Path]:
    """The raw file of every schema table, checked without reading any data: the set of files
    against the schema's tables, and every DDL column in the file's parquet schema.

    The raw folder holds exactly the tables of params.yaml `get_data`, so a file without a
    table, or a table without a file, is a table name to fix in params.yaml or schema.sql.
    """
    files = {p.name.removesuffix(".parquet"): p for p in sorted(raw_dir.glob("*.parquet"))}
    extra = sorted(set(files) - set(schema.tables))
    if extra:
        raise UserError(
            f"params.yaml get_data: table(s) {', '.join(extra)} not in schema.sql "
            f"(its tables: {', '.join(schema.tables)})"
        )
    out: dict[str, Path] = {}
    for name, ddl in schema.tables.items():
        if name not in files:
            raise UserError(
                f"schema.sql table {name!r} has no raw file {raw_dir / name}.parquet: add it to "
                "params.yaml get_data (files or tables) and run `dvc repro get_data`"
            )
        try:
            names = pq.read_schema(files[name]).names
        except (OSError, pa.ArrowException) as exc:
            raise UserError(
                f"raw {name}: {files[name]} is not a readable parquet file ({_first_line(exc)})"
            ) from None
        missing = [c.name for c in ddl.columns if c.name not in names]
        if missing:
            raise UserError(f"raw {name}: missing column(s) {', '.join(missing)}")
        out[name] = files[name]
    return out


def read_raw(raw_dir: Path, schema: Schema, dialect: str) -> dict[str, pa.Table]:
    """Every schema table's raw file, converted to the DDL's types, all in memory (nothing is
    written; the load itself streams with `raw_batches`)."""
    files = raw_files(raw_dir, schema)
    return {
        name: to_arrow(ddl, pq.read_table(files[name]), dialect)
        for name, ddl in schema.tables.items()
    }


def raw_batches(
    path: Path, table: TableDDL, dialect: str, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The DDL columns of raw file `path`, read in batches of at most `chunk_rows` rows, each
    converted and validated as `to_arrow` does when it is pulled (same checks, same messages;
    the columns were checked by `raw_files`). A NULL in a NOT NULL column is counted over the
    whole file for the message."""
    columns = [c.name for c in table.columns]
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns):
        data = pa.Table.from_batches([batch])
        arrays = {c.name: _column(table.name, c, data, dialect) for c in table.columns}
        bad = _null_in_not_null(table, arrays)
        if bad:
            whole = pq.read_table(path, columns=[bad.name])
            raise _null_error(table, bad, _column(table.name, bad, whole, dialect).null_count)
        yield pa.RecordBatch.from_arrays(list(arrays.values()), names=columns)


def load_tables(
    engine_url: str,
    raw_dir: Path,
    params: LoadParams,
    after_table: AfterTable | None = None,
    schema_sql: str | None = None,
) -> dict[str, Any]:
    """Check the raw files, then replace all schema tables in one transaction, streaming each
    file in (see the module docstring).

    `schema_sql` defaults to the packaged sql/schema.sql. Returns the load report: the masked
    DB URL and the rows per table (no timings, so the report is byte-stable; they are logged).
    """
    schema = read_schema(schema_sql if schema_sql is not None else read_sql("schema.sql"))
    files = raw_files(raw_dir, schema)
    engine = make_engine(engine_url)
    try:
        rows = _replace_tables(engine, schema, files, params, after_table)
    finally:
        engine.dispose()
    tables = {name: {"rows": rows[name]} for name in schema.tables}
    return {"database_url": mask_url(engine_url), "tables": tables}


def _replace_tables(
    engine: Engine,
    schema: Schema,
    files: dict[str, Path],
    params: LoadParams,
    after_table: AfterTable | None,
) -> dict[str, int]:
    start = time.perf_counter()
    rows: dict[str, int] = {}
    try:
        with raw_transaction(engine) as conn:
            cur = conn.cursor()
            for name in reversed(list(schema.tables)):
                cur.execute(f"DROP TABLE IF EXISTS {quote(engine, name)}")
            for i, stmt in enumerate(schema.statements, 1):
                try:
                    cur.execute(stmt)
                except Exception as exc:
                    raise UserError(
                        f"schema.sql statement {i} ({one_line(stmt)}): {_first_line(exc)}; "
                        "previous tables kept"
                    ) from exc
            for name, ddl in schema.tables.items():
                t0 = time.perf_counter()
                rows[name] = _insert(conn, engine, ddl, files[name], params)
                log.info("load %s: %d rows in %.2fs", name, rows[name], time.perf_counter() - t0)
                if after_table:
                    after_table(name)
            cur.close()
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"load failed, previous tables kept: {_first_line(exc)}") from exc
    log.info("loaded %s in %.2fs", ", ".join(schema.tables), time.perf_counter() - start)
    return rows


def _insert(conn: Any, engine: Engine, ddl: TableDDL, path: Path, params: LoadParams) -> int:
    total = pq.ParquetFile(path).metadata.num_rows
    batches = raw_batches(path, ddl, engine.dialect.name, params.chunk_rows)
    columns = [c.name for c in ddl.columns]
    with tqdm(
        total=total,
        desc=f"load {ddl.name}",
        unit="rows",
        unit_scale=True,
        disable=total <= params.progress_min_rows,
    ) as bar:
        return insert_batches(conn, engine, ddl.name, columns, batches, bar.update)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(raw_dir: str, report_path: str) -> None:
    """Run the stage with params.yaml and DATABASE_URL; write the load report."""
    settings = get_pipeline_settings()
    report = load_tables(settings.database_url, Path(raw_dir), load_params().load)
    out = Path(report_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
