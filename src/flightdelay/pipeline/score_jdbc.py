"""Spark over JDBC for stage score when DATABASE_URL is PostgreSQL (imported only for Spark).

The feature table (`features.table`) is read through JDBC with Debian's driver
(`/usr/share/java/postgresql.jar`, given to Spark as `spark.jars`, never `--packages`): one query
per split, the split's rows chosen by `features.split` as SQL (time and column strategies;
others keep the parquet export as input) and ordered by `features.key` as the export is, so the
predictions come out in the same order. Before Spark starts, each query's row count must equal
its split file's, or the export is read instead (the report says why).

The `predictions` table is written through JDBC too: into `predictions__new` (created with the
same DDL as the bulk loader's), then swapped in with the old table in one transaction; a failed
write drops `predictions__new` and keeps the previous table. Credentials go to Spark as JDBC
options (redacted in Spark's plans and logs), never in a URL or on a command line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from flightdelay.core.config import ColumnSplit, Params, TimeSplit
from flightdelay.core.db import make_engine, quote
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)

JAR = Path("/usr/share/java/postgresql.jar")
_TEXT = {"text", "character varying", "character", "name"}


@dataclass(frozen=True)
class Jdbc:
    """Where the spark engines read the features and write the predictions through JDBC."""

    url: str  # jdbc:postgresql://host:port/db, no credentials
    user: str
    password: str = field(repr=False)
    queries: dict[str, str] = field(default_factory=dict)  # split -> SELECT ... ORDER BY key
    database_url: str = field(repr=False, default="")

    def options(self) -> dict[str, str]:
        """The JDBC options every read and write passes (the driver named explicitly)."""
        return {
            "url": self.url,
            "user": self.user,
            "password": self.password,
            "driver": "org.postgresql.Driver",
        }


def jdbc_target(
    database_url: str, params: Params, sources: Mapping[str, Path]
) -> tuple[Jdbc | None, str]:
    """(the JDBC source, '') on PostgreSQL, else (None, why the parquet export is read)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None, "DATABASE_URL is not PostgreSQL"
    if not JAR.is_file():
        raise UserError(
            f"score on PostgreSQL with Spark needs the JDBC driver {JAR}: `make system-deps` "
            "installs Debian's libpostgresql-jdbc-java"
        )
    where = split_predicates(params)
    if where is None:
        return None, f"features.split {params.features.split.strategy} has no SQL form"
    engine = make_engine(database_url)
    try:
        queries = _queries(engine, params, where, sources)
    finally:
        engine.dispose()
    if isinstance(queries, str):
        return None, queries
    jdbc_url = f"jdbc:postgresql://{url.host or '127.0.0.1'}:{url.port or 5432}/{url.database}"
    return Jdbc(
        jdbc_url, str(url.username or ""), str(url.password or ""), queries, database_url
    ), ""


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def split_predicates(params: Params) -> dict[str, str] | None:
    """The WHERE clause of each split over the feature table, or None (no SQL form)."""
    split, target = params.features.split, f'"{params.train.target}"'
    known = f" AND {target} IS NOT NULL" if params.train.drop_null_target else ""
    if isinstance(split, TimeSplit):
        col = f'"{split.column}"'
        try:
            at = repr(float(split.cutoff))
        except ValueError:
            at = f"CAST({_literal(split.cutoff)} AS TIMESTAMP WITH TIME ZONE)"
        return {"train": f"{col} < {at}{known}", "test": f"{col} >= {at}{known}"}
    if isinstance(split, ColumnSplit):
        col = f'"{split.column}"'
        return {
            side: f"{col} IN ({', '.join(_literal(v) for v in values)}){known}"
            for side, values in (("train", split.train), ("test", split.test))
        }
    return None


def _queries(
    engine: Engine, params: Params, where: dict[str, str], sources: Mapping[str, Path]
) -> dict[str, str] | str:
    """The ordered query of each split, or why not (a count that differs from the export)."""
    table = params.features.table
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = :t AND table_schema = current_schema()"
            ),
            {"t": table},
        ).all()
        types = {str(name): str(kind) for name, kind in found}
        if not types:
            return f"the feature table {table} is not in the database"
        order = ", ".join(
            quote(engine, k) + (' COLLATE "C"' if types.get(k) in _TEXT else "") + " NULLS LAST"
            for k in params.features.key
        )
        queries = {}
        for split, src in sources.items():
            body = f"FROM {quote(engine, table)} WHERE {where[split]}"
            rows = conn.execute(text(f"SELECT COUNT(*) {body}")).scalar_one()
            expected = pq.ParquetFile(src).metadata.num_rows
            if rows != expected:
                return f"the {split} query has {rows} rows, {src} {expected}"
            queries[split] = f"SELECT * {body} ORDER BY {order}"
    return queries


def read_split(spark: Any, jdbc: Jdbc, split: str, src: Path, columns: Sequence[str]) -> Any:
    """`columns` of the split's rows through JDBC, in key order, typed as `src`'s columns."""
    from pyspark.sql import functions as F

    types = dict(spark.read.parquet(str(src.resolve())).dtypes)
    query = jdbc.queries[split].replace(
        "SELECT *", "SELECT " + ", ".join(f'"{c}"' for c in columns), 1
    )
    df = spark.read.format("jdbc").options(**jdbc.options(), query=query, fetchsize="10000").load()
    return df.select(*[F.col(c).cast(types[c]).alias(c) for c in columns])


def write_predictions(
    spark: Any, jdbc: Jdbc, files: Mapping[str, Path], keys: Sequence[str], batch: int
) -> int:
    """Replace the `predictions` table with the written prediction files, through JDBC: into
    `predictions__new` (the bulk loader's DDL), swapped in at the end; returns the rows."""
    from flightdelay.pipeline.score import TABLE, predictions_ddl

    engine = make_engine(jdbc.database_url)
    new = quote(engine, TABLE + "__new")
    try:
        _, body = predictions_ddl(engine, pq.read_schema(next(iter(files.values()))), keys)
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
            conn.execute(text(f"CREATE TABLE {new} ({body})"))
        ok = False
        try:
            for split, dst in files.items():
                append_split(spark, jdbc, TABLE, split, dst, batch)
            ok = True
        finally:
            _finish(engine, TABLE, ok)
    finally:
        engine.dispose()
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files.values())


def append_split(spark: Any, jdbc: Jdbc, name: str, split: str, dst: Path, batch: int) -> None:
    """Append the written predictions file `dst` (with its `split`) to `<name>__new`."""
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(dst.resolve()))
    df = df.select(F.lit(split).alias("split"), *df.columns)
    df.write.format("jdbc").options(
        **jdbc.options(),
        dbtable=f'"{name}__new"',
        batchsize=str(batch),
        reWriteBatchedInserts="true",
    ).mode("append").save()


def _finish(engine: Engine, name: str, ok: bool) -> None:
    """Swap `<name>__new` in (one transaction) when `ok`, else drop it."""
    new, old = quote(engine, name + "__new"), quote(engine, name)
    with engine.begin() as conn:
        if ok:
            conn.execute(text(f"DROP TABLE IF EXISTS {old}"))
            conn.execute(text(f"ALTER TABLE {new} RENAME TO {old}"))
        else:
            conn.execute(text(f"DROP TABLE IF EXISTS {new}"))
