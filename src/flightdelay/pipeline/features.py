"""Stage features: materialize sql/features.sql as a table and export the train/test splits.

In ONE transaction: the query runs into a staging table, which is checked (the key, the split
column and the target exist; no repeated key; NULL targets; both classes on both sides), split
and streamed into the parquet files (under temporary names), and only then swapped in; the
files are put in place after the commit. A bad input leaves the previous table and files.

Nothing holds the table (:mod:`flightdelay.pipeline.features_stream`): the column types come
from SQL, the rows are read twice in `features.key` order in bounded chunks (the label and
split column for the masks, then every column for the files) and the files are written in
fixed row groups. Peak memory is a chunk, a row group and one byte per row per mask. Only an
empty `features.key` (rows ordered by a hash of their content) holds the table in memory.

The same data gives the same bytes on SQLite and PostgreSQL: columns get one type on both,
rows are ordered by `features.key` (never by rowid or the database's order), and the parquet
writer's options are fixed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Engine, text
from tqdm import tqdm

from flightdelay.core.config import (
    FeaturesParams,
    Params,
    RandomSplit,
    get_pipeline_settings,
    load_params,
)
from flightdelay.core.db import (
    arrow_table,
    check_case,
    make_engine,
    one_line,
    quote,
    read_sql,
    strip_comments,
)
from flightdelay.core.errors import UserError
from flightdelay.pipeline.features_stream import (
    SplitWriter,
    chunk_table,
    column_kinds,
    fetch,
    key_hashes,
    order_by,
    schema,
)
from flightdelay.pipeline.splits import Mask, make_splits, split_rows

log = logging.getLogger(__name__)

SOURCE = "features.sql"


def bind_params(select: str, sql_params: dict[str, Any]) -> dict[str, Any]:
    """The bind parameters of `select` from `features.sql_params` (booleans bound as 1/0, so
    `CASE ... THEN :flag` has one type on both engines); a missing or unused one is an error."""
    used = set(text(select).compile().params)
    missing = sorted(used - set(sql_params))
    if missing:
        raise UserError(f"{SOURCE} uses :{missing[0]}: add it to params.yaml features.sql_params")
    unused = sorted(set(sql_params) - used)
    if unused:
        raise UserError(
            f"params.yaml features.sql_params.{unused[0]}: {SOURCE} has no :{unused[0]}"
        )
    return {k: int(v) if isinstance(v, bool) else v for k, v in sql_params.items()}


@contextmanager
def sql_errors(statement: str) -> Iterator[None]:
    """Turn a database error into one UserError line naming features.sql and the statement."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        msg = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [type(exc).__name__]
        raise UserError(f"{SOURCE} ({one_line(statement)}): {msg[0]}") from exc


def check_columns(columns: list[str], params: Params, select: str) -> None:
    """Every column the params name exists in the query's result, once, with a portable name."""
    seen: set[str] = set()
    for col in columns:
        if col in seen:
            raise UserError(f"{SOURCE}: column {col} appears twice; give one an alias")
        seen.add(col)
        check_case(SOURCE, "column", col, select)
    split = params.features.split
    named = [("features.key", c) for c in params.features.key]
    if not isinstance(split, RandomSplit):
        named.append(("features.split.column", split.column))
    named.append(("train.target", params.train.target))
    for key, col in named:
        if col not in seen:
            raise UserError(
                f"params.yaml {key}: {col!r} is not a column of {SOURCE} "
                f"(columns: {', '.join(columns)})"
            )


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------


def build_features(
    engine: Engine, params: Params, out_dir: Path, sql: str | None = None
) -> dict[str, int]:
    """Build the feature table from `sql` (default: the packaged features.sql) and write
    `out_dir/{train,test}.parquet`, streaming, in one transaction: the files are put in place
    only after the table was swapped in. Returns the row counts (table, train, test)."""
    select = strip_comments(sql if sql is not None else read_sql(SOURCE)).strip().rstrip(";")
    binds = bind_params(select, params.features.sql_params)
    writers: list[SplitWriter] = []
    try:
        with engine.begin() as conn:
            with sql_errors(select):
                probe = conn.execute(text(f"SELECT * FROM ({select}) AS q WHERE 1 = 0"), binds)
                columns = list(probe.keys())
            check_columns(columns, params, select)
            staging = _build_staging(conn, engine, params.features, select, binds)
            counts = Streamer(conn, engine, staging, columns).run(params, out_dir, writers)
            _swap(conn, engine, params.features.table)
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    for writer in writers:
        writer.commit()
    return counts


def _build_staging(
    conn: Connection, engine: Engine, fp: FeaturesParams, select: str, binds: dict[str, Any]
) -> str:
    staging = quote(engine, f"{fp.table}__new")
    conn.execute(text(f"DROP TABLE IF EXISTS {staging}"))
    with sql_errors(select):
        conn.execute(text(f"CREATE TABLE {staging} AS {select}"), binds)
    return staging


def _swap(conn: Connection, engine: Engine, table: str) -> None:
    conn.execute(text(f"DROP TABLE IF EXISTS {quote(engine, table)}"))
    staging = quote(engine, f"{table}__new")
    conn.execute(text(f"ALTER TABLE {staging} RENAME TO {quote(engine, table)}"))


class Streamer:
    """The staging table, read twice in `features.key` order: once for the label, the split
    column and the key (the masks), once for every column (the files)."""

    def __init__(self, conn: Connection, engine: Engine, staging: str, columns: list[str]) -> None:
        self.conn, self.engine, self.staging, self.columns = conn, engine, staging, columns
        self.dialect = engine.dialect.name
        dbapi: Any = conn.connection.dbapi_connection
        self.dbapi = dbapi
        cur = dbapi.cursor()
        try:
            self.kinds = column_kinds(cur, self.dialect, staging, self._quoted(columns))
        finally:
            cur.close()

    def _quoted(self, names: list[str]) -> list[tuple[str, str]]:
        return [(n, quote(self.engine, n)) for n in names]

    def _rows(self, names: list[str], order: str) -> Iterator[pa.Table]:
        cols = ", ".join(q for _, q in self._quoted(names))
        sql = f"SELECT {cols} FROM {self.staging} ORDER BY {order}"
        for rows in fetch(self.dbapi, self.dialect, sql):
            yield chunk_table(rows, names, self.kinds)

    def run(self, params: Params, out_dir: Path, writers: list[SplitWriter]) -> dict[str, int]:
        """Write the splits through `writers` (appended here, closed, not yet committed)."""
        key = params.features.key
        if not key:
            return self._in_memory(params, out_dir, writers)
        order = order_by(self.dialect, self._quoted(key), self.kinds)
        masks = self.masks(params, order)
        arrow_schema = schema(self.columns, self.kinds)
        for split in ("train", "test"):
            writers.append(SplitWriter(out_dir / f"{split}.parquet", arrow_schema))
        rows = 0
        with tqdm(total=len(masks[0]), desc="features", unit="rows", unit_scale=True) as bar:
            for table in self._rows(self.columns, order):
                n = table.num_rows
                for writer, mask in zip(writers, masks, strict=True):
                    writer.write(table.filter(pa.array(mask[rows : rows + n])))
                rows += n
                bar.update(n)
        for writer in writers:
            writer.close()
        return {"rows": rows, "train": writers[0].rows, "test": writers[1].rows}

    def masks(self, params: Params, order: str) -> tuple[Mask, Mask]:
        """The train/test masks in key order, from the label (+ split column) alone."""
        key, split = params.features.key, params.features.split
        wanted = [params.train.target, *([] if isinstance(split, RandomSplit) else [split.column])]
        wanted = list(dict.fromkeys(wanted))
        parts, repeats, last = [schema(wanted, self.kinds).empty_table()], 0, np.zeros(0, "u8")
        for table in self._rows(list(dict.fromkeys([*key, *wanted])), order):
            hashes = np.concatenate([last, key_hashes(table.select(key))])
            repeats += int((hashes[1:] == hashes[:-1]).sum())  # sorted: repeats are neighbours
            last = hashes[-1:]
            parts.append(table.select(wanted))
        if repeats:
            raise UserError(f"params.yaml features.key {key}: {repeats} row(s) repeat a key")
        return split_rows(pa.concat_tables(parts).to_pandas(), params)

    def _in_memory(
        self, params: Params, out_dir: Path, writers: list[SplitWriter]
    ) -> dict[str, int]:
        log.warning("features.key is empty: the table is held in memory to order it by content")
        frame = pd.read_sql(text(f"SELECT * FROM {self.staging}"), self.conn)
        for split, part in zip(("train", "test"), make_splits(frame, params), strict=True):
            table = arrow_table(part)
            writers.append(SplitWriter(out_dir / f"{split}.parquet", table.schema))
            writers[-1].write(table)
            writers[-1].close()
        return {"rows": len(frame), "train": writers[0].rows, "test": writers[1].rows}


def main(out_dir: str, _load_report: str) -> None:
    """Run the stage: build the table in DATABASE_URL and write train/test parquet files."""
    params = load_params()
    engine = make_engine(get_pipeline_settings().database_url)
    try:
        counts = build_features(engine, params, Path(out_dir))
    finally:
        engine.dispose()
    log.info(
        "%s: %d rows; train %d, test %d",
        params.features.table,
        counts["rows"],
        counts["train"],
        counts["test"],
    )
