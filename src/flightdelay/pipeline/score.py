"""Stage score: the model at `@serving` over the feature table -> data/predictions/ + a table.

Each split (`<data-dir>/{train,test}.parquet`) becomes `<out-dir>/<split>.parquet` (fixed names)
with the `features.key` columns, `probability`, `label` (probability >= the model's decision
threshold), `model_name`, `model_version` and `run_id`. The same rows, with a `split` column,
replace the `predictions` table of DATABASE_URL in one transaction (the load stage's bulk
loader). `<out-dir>/score.json` (untracked) says which engine ran, why, and how fast.

`params.yaml score.engine` picks the engine: `pandas` (in-process, never imports pyspark),
`spark-udf` or `spark-sql` (:mod:`flightdelay.pipeline.score_spark`). The pandas engine writes
the same bytes for the same model and data.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from flightdelay.core import registry
from flightdelay.core.config import SERVING_ALIAS, Params, get_pipeline_settings
from flightdelay.core.db import (
    Column,
    TableDDL,
    bulk_insert,
    make_engine,
    quote,
    raw_transaction,
)
from flightdelay.core.errors import UserError
from flightdelay.core.params import ScoreParams, load_params
from flightdelay.core.tracking import PIPELINE_FILE, Tracking

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
TABLE = "predictions"
REPORT = "score.json"


@dataclass(frozen=True)
class ServedVersion:
    """The version `@serving` points at, downloaded and loaded as a pyfunc."""

    name: str
    version: int
    run_id: str
    path: Path  # the local model directory
    threshold: float
    inputs: list[str]  # the signature's input columns, in order
    optional: set[str]  # inputs the signature allows to be missing
    pyfunc: Any = field(repr=False)

    @property
    def pipeline_file(self) -> Path:
        """The skops file of the fitted pipeline (what the spark-sql engine compiles)."""
        return self.path / "artifacts" / PIPELINE_FILE


def served_version(tracking: Tracking, name: str, dst: Path) -> ServedVersion:
    """Resolve `models:/<name>@serving`, download it under `dst` and load its pyfunc."""
    import mlflow.pyfunc

    version = registry.alias_version(tracking.client, name, SERVING_ALIAS)
    if version is None:
        raise UserError(
            f"model {name!r} has no @{SERVING_ALIAS} in {tracking.masked_uri}: "
            "run `make run` (register) first"
        )
    mv = tracking.client.get_model_version(name, version)
    path = tracking.download_version(name, version, dst)
    model = mlflow.pyfunc.load_model(str(path))
    schema = model.metadata.get_input_schema()
    if schema is None:
        raise UserError(f"model {name!r} v{version} has no input signature: cannot score a table")
    config = dict(model.model_config or {})
    threshold: Any = config.get("decision_threshold")
    if threshold is None:
        params = tracking.client.get_run(str(mv.run_id)).data.params
        threshold = params.get("decision_threshold", 0.5)
    return ServedVersion(
        name=name,
        version=int(version),
        run_id=str(mv.run_id),
        path=path,
        threshold=float(threshold),
        inputs=list(schema.input_names()),
        optional={c.name for c in schema.inputs if not c.required},
        pyfunc=model,
    )


def check_columns(
    names: Sequence[str], model: ServedVersion, keys: Sequence[str], src: Path
) -> None:
    """UserError naming the key or model input columns `src` lacks."""
    missing = [c for c in dict.fromkeys([*keys, *model.inputs]) if c not in names]
    if missing:
        raise UserError(
            f"{src}: column(s) {', '.join(missing)} missing (params.yaml features.key and the "
            f"inputs of {model.name} v{model.version})"
        )


def predict(model: ServedVersion, frame: pd.DataFrame) -> np.ndarray:
    """The pyfunc's probabilities for the model's input columns of `frame`."""
    try:
        proba = np.asarray(model.pyfunc.predict(frame[model.inputs]), dtype=np.float64)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"{model.name} v{model.version} cannot score these rows: {first}") from None
    return proba[:, -1] if proba.ndim == 2 else proba


def output_table(keys: pa.Table, proba: np.ndarray, model: ServedVersion) -> pa.Table:
    """The prediction rows: the key columns as read, then probability, label and the model."""
    n = keys.num_rows
    columns = {
        "probability": pa.array(proba, type=pa.float64()),
        "label": pa.array((proba >= model.threshold).astype(np.int32), type=pa.int32()),
        "model_name": pa.array([model.name] * n, type=pa.string()),
        "model_version": pa.array(np.full(n, model.version, dtype=np.int64), type=pa.int64()),
        "run_id": pa.array([model.run_id] * n, type=pa.string()),
    }
    for name, values in columns.items():
        keys = keys.append_column(name, values)
    return keys


def score_pandas(
    model: ServedVersion, src: Path, dst: Path, keys: Sequence[str], batch_rows: int
) -> int:
    """Score `src` in batches of `batch_rows` in this process; writes `dst`, returns rows."""
    from flightdelay.pipeline.features_stream import SplitWriter

    pf = pq.ParquetFile(src)
    check_columns(pf.schema_arrow.names, model, keys, src)
    columns = list(dict.fromkeys([*keys, *model.inputs]))
    rows = pf.metadata.num_rows
    empty = pf.schema_arrow.empty_table().select(list(keys))
    writer = SplitWriter(dst, output_table(empty, np.zeros(0), model).schema)
    try:  # streamed: a batch at a time, in the row groups write_parquet writes
        with tqdm(total=rows, desc=f"score {src.stem}", unit="rows", unit_scale=True) as bar:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                table = pa.Table.from_batches([batch])
                proba = predict(model, table.to_pandas())
                writer.write(output_table(table.select(list(keys)), proba, model))
                bar.update(batch.num_rows)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return int(rows)


def first_rows(model: ServedVersion, src: Path, keys: Sequence[str], rows: int) -> None:
    """Score the first `rows` rows of `src` and drop the answer: a model that cannot score this
    data fails here, before any file is written, and the pyfunc's first-call set-up is paid
    before the timed splits (as the Spark engines' expression check is)."""
    pf = pq.ParquetFile(src)
    check_columns(pf.schema_arrow.names, model, keys, src)
    batch = next(pf.iter_batches(batch_size=max(rows, 1), columns=model.inputs), None)
    if batch is not None:
        predict(model, pa.Table.from_batches([batch]).to_pandas())


def sql_type(arrow_type: pa.DataType) -> str:
    """The portable SQL type (core/db.py's set) of a prediction column."""
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE"
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return "BIGINT"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE PRECISION"
    return "TEXT"


def predictions_ddl(engine: Any, schema: pa.Schema, keys: Sequence[str]) -> tuple[TableDDL, str]:
    """The `predictions` table for prediction files of `schema`: `split` first, the key
    columns nullable, the rest NOT NULL; and the body of its CREATE TABLE."""
    names = ["split", *schema.names]
    types = ["TEXT", *(sql_type(schema.field(n).type) for n in schema.names)]
    ddl = TableDDL(TABLE, tuple(Column(n, t, n in keys) for n, t in zip(names, types, strict=True)))
    body = ", ".join(
        f"{quote(engine, c.name)} {c.sql_type}" + ("" if c.nullable else " NOT NULL")
        for c in ddl.columns
    )
    return ddl, body


def write_table(database_url: str, files: dict[str, Path], keys: Sequence[str], chunk: int) -> int:
    """Replace the `predictions` table with every split's rows in one transaction (a failure
    keeps the previous table); returns the rows written."""
    from flightdelay.pipeline.load import to_arrow

    engine = make_engine(database_url)
    try:
        ddl, body = predictions_ddl(engine, pq.read_schema(next(iter(files.values()))), keys)
        total = 0
        with raw_transaction(engine) as conn:
            cur = conn.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {quote(engine, TABLE)}")
            cur.execute(f"CREATE TABLE {quote(engine, TABLE)} ({body})")
            cur.close()
            for split, path in files.items():  # a batch at a time
                pf = pq.ParquetFile(path)
                n = pf.metadata.num_rows
                with tqdm(total=n, desc=f"table {split}", unit="rows", unit_scale=True) as bar:
                    for batch in pf.iter_batches(batch_size=chunk):
                        table = pa.Table.from_batches([batch])
                        table = table.add_column(0, "split", pa.array([split] * table.num_rows))
                        data = to_arrow(ddl, table, engine.dialect.name)
                        bulk_insert(conn, engine, TABLE, data, chunk, bar.update)
                total += n
    finally:
        engine.dispose()
    return total


def input_files(params: Params, data_dir: Path) -> dict[str, Path]:
    """The feature split files, checked before any model is fetched: present, with the keys."""
    keys = list(params.features.key)
    if not keys:
        raise UserError("params.yaml features.key is empty: predictions need id columns")
    sources = {s: data_dir / f"{s}.parquet" for s in SPLITS}
    absent = [str(p) for p in sources.values() if not p.is_file()]
    if absent:
        raise UserError(f"{', '.join(absent)} not found: run `dvc repro features` first")
    for src in sources.values():
        missing = [k for k in keys if k not in pq.read_schema(src).names]
        if missing:
            raise UserError(f"{src}: column(s) {', '.join(missing)} missing (features.key)")
    return sources


def score(
    sp: ScoreParams,
    model: ServedVersion,
    sources: dict[str, Path],
    out_dir: Path,
    keys: Sequence[str],
    jdbc: Any = None,
) -> dict[str, Any]:
    """Score every split with `sp.engine` (Spark: through `jdbc` when given); returns the
    report (engine that ran, rows, speed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {s: out_dir / f"{s}.parquet" for s in sources}
    report: dict[str, Any] = {"engine_requested": sp.engine, "engine": sp.engine, "splits": {}}
    if sp.engine == "pandas":
        start = time.perf_counter()
        first_rows(model, next(iter(sources.values())), keys, sp.verify_rows)
        report["check_seconds"] = round(time.perf_counter() - start, 3)
        for split, src in sources.items():
            start = time.perf_counter()
            rows = score_pandas(model, src, files[split], keys, sp.batch_rows)
            report["splits"][split] = speed(rows, time.perf_counter() - start)
    else:
        from flightdelay.pipeline.score_spark import score_spark

        report.update(score_spark(sp, model, sources, files, keys, jdbc))
    return report


def speed(rows: int, seconds: float) -> dict[str, float]:
    """Rows, seconds and rows per second of one split."""
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / max(seconds, 1e-9)),
    }


def main(data_dir: str, out_dir: str) -> None:
    """Run the stage with params.yaml, MLFLOW_TRACKING_URI and DATABASE_URL."""
    settings = get_pipeline_settings()
    params = load_params(settings.params_path)
    sp = params.score
    out = Path(out_dir)
    sources = input_files(params, Path(data_dir))
    tracking = Tracking(settings).check()
    with tempfile.TemporaryDirectory(prefix="fd-score-") as tmp:
        model = served_version(tracking, params.registry.model_name, Path(tmp))
        log.info(
            "scoring with %s v%s (run %s), engine %s",
            model.name,
            model.version,
            model.run_id,
            sp.engine,
        )
        jdbc, why = None, "the pandas engine reads the export"
        if sp.engine != "pandas":
            from flightdelay.pipeline.score_jdbc import jdbc_target

            jdbc, why = jdbc_target(settings.database_url, params, sources)
        report = score(sp, model, sources, out, params.features.key, jdbc)
    report["input"] = {"source": "jdbc" if jdbc else "parquet", "why_not_jdbc": why or None}
    rows = report.pop("table_rows", None)
    if rows is None:  # the project's bulk loader (the JDBC path wrote the table itself)
        files = {s: out / f"{s}.parquet" for s in SPLITS}
        rows = write_table(settings.database_url, files, params.features.key, sp.batch_rows)
    report["model"] = {
        "name": model.name,
        "version": model.version,
        "run_id": model.run_id,
        "threshold": model.threshold,
    }
    report["table"] = {"name": TABLE, "rows": rows, "database_url": settings.masked_database_url()}
    report["scored_at"] = registry.now()
    (out / REPORT).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    speeds = ", ".join(
        f"{s} {v['rows']} rows at {v['rows_per_s']:.0f} rows/s" for s, v in report["splits"].items()
    )
    log.info("engine %s: %s; %d rows in table %s", report["engine"], speeds, rows, TABLE)
