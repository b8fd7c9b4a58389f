"""Stage load: create the tables of sql/schema.sql in DATABASE_URL and load data/raw into them.

Every raw file is validated against the DDL (columns present, values of the declared type,
no NULL in a NOT NULL column) before the database is touched. The tables are then dropped,
re-created and filled inside ONE transaction: a failure at any point rolls back to the previous
complete tables, and a re-run gives the same result (idempotent).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from flightdelay.core.config import LoadParams, get_pipeline_settings, load_params, mask_url
from flightdelay.core.db import (
    Column,
    TableDDL,
    bulk_insert,
    make_engine,
    parse_schema,
    raw_transaction,
    read_sql,
)
from flightdelay.core.errors import UserError

log = logging.getLogger(__name__)

# A hook called after each table is written inside the transaction (tests inject failures here).
AfterTable = Callable[[str], None]


def to_arrow(table: TableDDL, frame: pd.DataFrame, dialect: str) -> pa.Table:
    """The frame's DDL columns, converted to the declared types, as an Arrow table.

    Raises UserError naming the table and column for a missing column, a value of the wrong
    type, or a NULL in a NOT NULL column.
    """
    missing = [c.name for c in table.columns if c.name not in frame.columns]
    if missing:
        raise UserError(f"raw {table.name}: missing column(s) {', '.join(missing)}")
    arrays = {c.name: _convert(table.name, c, frame[c.name], dialect) for c in table.columns}
    for col in table.columns:
        nulls = arrays[col.name].null_count
        if nulls and not col.nullable:
            raise UserError(
                f"raw {table.name}.{col.name}: {nulls} NULL value(s) in a NOT NULL column"
            )
    return pa.table(arrays)


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
            return pc.strftime(ts, "%Y-%m-%d %H:%M:%S+00:00") if dialect == "sqlite" else ts
        return pa.array(s.astype("string").astype(object).where(s.notna(), None), type=pa.string())
    except (ValueError, TypeError, pa.ArrowInvalid) as exc:
        sample = s.dropna().astype(str).head(1).tolist()
        raise UserError(
            f"raw {table}.{col.name}: expected {col.sql_type}, got values like {sample[:1]} "
            f"({str(exc).splitlines()[0][:80]})"
        ) from None


def load_tables(
    engine_url: str,
    raw_dir: Path,
    params: LoadParams,
    after_table: AfterTable | None = None,
) -> dict[str, Any]:
    """Validate every raw file, then replace all schema tables in one transaction.

    Returns the load report: rows and seconds per table and the masked DB URL.
    """
    schema = parse_schema(read_sql("schema.sql"))
    engine = make_engine(engine_url)
    dialect = engine.dialect.name
    data: dict[str, pa.Table] = {}
    for name, ddl in schema.items():
        path = raw_dir / f"{name}.parquet"
        if not path.is_file():
            raise UserError(f"raw file missing: {path} (run `dvc repro get_data`)")
        data[name] = to_arrow(ddl, pd.read_parquet(path), dialect)

    report: dict[str, Any] = {"database_url": mask_url(engine_url), "tables": {}}
    start = time.perf_counter()
    try:
        with raw_transaction(engine) as conn:
            cur = conn.cursor()
            for name in reversed(list(schema)):
                cur.execute(f"DROP TABLE IF EXISTS {name}")
            for name, ddl in schema.items():
                t0 = time.perf_counter()
                for stmt in ddl.statements:
                    cur.execute(stmt)
                rows = data[name].num_rows
                with tqdm(
                    total=rows,
                    desc=f"load {name}",
                    unit="rows",
                    unit_scale=True,
                    disable=rows <= params.progress_min_rows,
                ) as bar:
                    bulk_insert(conn, dialect, name, data[name], params.chunk_rows, bar.update)
                report["tables"][name] = {
                    "rows": rows,
                    "seconds": round(time.perf_counter() - t0, 3),
                }
                if after_table:
                    after_table(name)
            cur.close()
    except UserError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"load failed, previous tables kept: {first}") from exc
    finally:
        engine.dispose()
    report["seconds"] = round(time.perf_counter() - start, 3)
    return report


def main(raw_dir: str, report_path: str) -> None:
    """Run the stage with params.yaml and DATABASE_URL; write the load report."""
    settings = get_pipeline_settings()
    report = load_tables(settings.database_url, Path(raw_dir), load_params().load)
    out = Path(report_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    log.info("loaded %s in %.2fs", ", ".join(report["tables"]), report["seconds"])
