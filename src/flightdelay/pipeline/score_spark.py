"""The Spark engines of stage score (imported only for them; pyspark only inside functions).

- `spark-udf`: `mlflow.pyfunc.spark_udf` of the served model (rows cross Arrow into Python).
- `spark-sql`: when the served pipeline compiles to the linear scorer (the service's), the scorer
  becomes ONE Spark SQL expression (a CASE WHEN per categorical weight, folded impute/scale,
  bias, 1/(1+exp(-z))) that runs in the JVM with no Python worker. It is used only after it
  matched the pyfunc within 1e-9 on `score.verify_rows` rows of the data (and the same rows with
  unseen categories and missing values); otherwise spark-udf runs and the report says why.

SPARK_MASTER picks the cluster (`local[*]` by default; `spark://host:7077`, `yarn`,
`k8s://https://...`): the input and output paths must then be on storage every executor sees.

No shuffle: each task reads whole parquet row groups of a split (`score.spark_partitions` byte
ranges of the file, else Spark's default: about one per core; JDBC input is one task), scores
them and writes the key columns and the probability as its own part file into a temporary folder.
The driver then streams the part files, in task order (= file order), through the pandas engine's
`output_table` and `SplitWriter` into the fixed name: the same columns, types and row groups as
the pandas engine's file, and no half-written file on failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from flightdelay.core.errors import UserError
from flightdelay.core.params import ScoreParams
from flightdelay.pipeline.features_stream import SplitWriter
from flightdelay.pipeline.score import ServedVersion, check_columns, output_table, speed
from flightdelay.pipeline.score_jdbc import JAR, Jdbc, read_split, write_predictions
from flightdelay.pipeline.score_sql import FLOATING, SqlUnusable, compiled_expression

log = logging.getLogger(__name__)

TOLERANCE = 1e-9
UNSEEN = "\x00never-seen\x00"


def spark_conf(master: str, batch_rows: int, jars: Sequence[str] = ()) -> dict[str, str]:
    """The session's settings; a local master also keeps the driver and its UI off the network.
    JVMs run in UTC (JDBC timestamps); `jars` (the JDBC driver) go to `spark.jars`."""
    utc = "-Duser.timezone=UTC"
    conf = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(batch_rows),
        "spark.ui.showConsoleProgress": "false",  # tqdm below shows the tasks instead
        "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
        "spark.driver.extraJavaOptions": utc,
        "spark.executor.extraJavaOptions": utc,
    }
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if master.startswith("local"):
        conf |= {
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.enabled": "false",
            # The expression compiles to one big method: let the JIT compile it anyway (4x).
            "spark.driver.extraJavaOptions": f"{utc} -XX:-DontCompileHugeMethods",
        }
    return conf


@contextmanager
def spark_session(batch_rows: int, jars: Sequence[str] = ()) -> Iterator[Any]:
    """A SparkSession on SPARK_MASTER (default `local[*]`), stopped afterwards."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise UserError(
            "score.engine spark-udf/spark-sql needs pyspark: pip install pyspark==4.3.0 "
            "(or use score.engine: pandas)"
        ) from None
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise UserError("the Spark engines need Java 17+: `make system-deps` installs openjdk")
    master = os.environ.get("SPARK_MASTER", "local[*]")
    builder = SparkSession.builder.master(master).appName("flightdelay-score")
    for key, value in spark_conf(master, batch_rows, jars).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # PySpark's Python workers run `SparkContext.pythonExec` (PYSPARK_PYTHON, else `python3` on
    # PATH). Locally they must run this interpreter: set it on the context, not the environment.
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        spark.sparkContext.pythonExec = sys.executable
    spark.sparkContext.setLogLevel("WARN")
    try:
        yield spark
    finally:
        spark.stop()


@contextmanager
def task_progress(spark: Any, desc: str) -> Iterator[None]:
    """A tqdm bar over the tasks (partitions) of the Spark jobs run inside the block."""
    tracker, stop = spark.sparkContext.statusTracker(), threading.Event()
    bar = tqdm(desc=desc, unit="tasks", total=0)

    def poll() -> None:
        seen: dict[int, tuple[int, int]] = {}
        while not stop.wait(0.5):
            for sid in {*seen, *tracker.getActiveStageIds()}:
                info = tracker.getStageInfo(sid)
                if info is not None:
                    seen[sid] = (info.numTasks, info.numCompletedTasks)
            bar.total = sum(t for t, _ in seen.values())
            bar.n = sum(d for _, d in seen.values())
            bar.refresh()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def probe_rows(df: Any, model: ServedVersion, rows: int) -> Any:
    """`rows` rows of `df`, again with every string input unseen, and again with every optional
    string/floating input missing: what the expression is checked on."""
    from pyspark.sql import functions as F

    types = dict(df.dtypes)
    sample = df.select(*model.inputs).limit(rows)
    unseen = sample.select(
        *[F.lit(UNSEEN).alias(c) if types[c] == "string" else F.col(c) for c in model.inputs]
    )
    nullable = {c for c in model.optional if types[c] in {"string", *FLOATING}}
    missing = sample.select(
        *[F.lit(None).cast(types[c]).alias(c) if c in nullable else F.col(c) for c in model.inputs]
    )
    return sample.unionByName(unseen).unionByName(missing)


def verify_expression(df: Any, model: ServedVersion, expr: str, rows: int) -> float:
    """The largest |SQL - pyfunc| on the probe rows; SqlUnusable beyond TOLERANCE."""
    from pyspark.sql import functions as F

    probed = probe_rows(df, model, rows).withColumn("_sql", F.expr(expr)).toPandas()
    got = probed.pop("_sql").to_numpy(dtype=np.float64)
    want = np.asarray(model.pyfunc.predict(probed[model.inputs]), dtype=np.float64)
    worst = float(np.max(np.abs(got - want))) if len(got) else 0.0
    if not worst <= TOLERANCE:  # NaN fails too
        raise SqlUnusable(f"the SQL expression differs from the pyfunc by {worst:.2e}")
    return worst


def uses_python(df: Any) -> bool:
    """True when the physical plan of `df` runs Python (a UDF or pandas worker)."""
    plan = str(df._jdf.queryExecution().executedPlan().toString())
    return any(node in plan for node in ("Python", "ArrowEval", "MapInPandas", "BatchEval"))


def read_input(
    spark: Any,
    src: Path,
    model: ServedVersion,
    keys: Sequence[str],
    partitions: int | None,
    jdbc: Jdbc | None = None,
) -> Any:
    """`src`'s key and input columns in file order. A task reads whole row groups: `src` is cut
    into `partitions` byte ranges when given (a range holds the row groups whose middle is in
    it), else Spark's default (about one per core). With `jdbc`, the same rows, columns, types
    and order come from the feature table through JDBC (one task)."""
    check_columns(pq.read_schema(src).names, model, keys, src)
    columns = list(dict.fromkeys([*keys, *model.inputs]))
    if jdbc is not None:
        return read_split(spark, jdbc, src.stem, src, columns)
    if partitions:  # read when the job is planned: the write that follows
        size = -(-src.stat().st_size // partitions)
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(max(size, 1)))
    else:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    return spark.read.parquet(str(src.resolve())).select(*columns)


def part_index(path: Path) -> int:
    """The task (partition) number in a Spark part file's name: part-00012-<uuid>...parquet."""
    return int(path.name.split("-", 2)[1])


def write_single(
    df: Any, dst: Path, model: ServedVersion, keys: Sequence[str], schema: pa.Schema, batch: int
) -> tuple[int, int, float]:
    """Write `df` (the key columns and `probability`, in task order) as ONE parquet file at `dst`
    with the pandas engine's columns (`schema`: the keys' types) and row groups: every task writes
    its part file into a temporary folder, then the part files are streamed, in task order, into
    `dst` (a temporary name until complete). Returns the rows, the part files and the seconds
    the merge took (on the driver, one core: what more executors do not speed up)."""
    tmp = dst.with_name(f".{dst.stem}.spark-tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        df.write.mode("overwrite").option("compression", "snappy").parquet(str(tmp.resolve()))
        parts = sorted(tmp.glob("part-*.parquet"), key=part_index)
        merge = time.perf_counter()
        key_schema = pa.schema([schema.field(k) for k in keys])
        empty = output_table(key_schema.empty_table(), np.zeros(0), model)
        writer = SplitWriter(dst, empty.schema)
        try:
            for part in parts:
                for rows in pq.ParquetFile(part).iter_batches(batch_size=batch):
                    table = pa.Table.from_batches([rows])
                    proba = table.column("probability").to_numpy()
                    writer.write(output_table(table.select(keys).cast(key_schema), proba, model))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        writer.commit()
        return writer.rows, len(parts), time.perf_counter() - merge
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def predictions(df: Any, probability: Any, keys: Sequence[str]) -> Any:
    """The key columns and `probability` (the `probability` column expression as a double):
    what the tasks write; the label and the model's columns are added by `write_single`."""
    return df.select(*keys, probability.cast("double").alias("probability"))


def sql_or_reason(
    spark: Any, sp: ScoreParams, model: ServedVersion, src: Path
) -> tuple[str | None, str]:
    """(the checked expression, '') or (None, why spark-udf runs instead)."""
    df = spark.read.parquet(str(src.resolve()))
    try:
        expr = compiled_expression(model, dict(df.dtypes))
        worst = verify_expression(df, model, expr, sp.verify_rows)
    except SqlUnusable as exc:
        log.warning("spark-sql cannot be used (%s): falling back to spark-udf", exc)
        return None, str(exc)
    log.info("spark-sql: expression of %d chars matches the pyfunc (worst %.1e)", len(expr), worst)
    return expr, ""


def probability_column(spark: Any, model: ServedVersion, expr: str | None) -> Any:
    """P(positive) as a Column: the checked SQL expression, else the model's spark_udf."""
    from pyspark.sql import functions as F

    if expr is not None:
        return F.expr(expr)
    from mlflow.pyfunc import spark_udf

    udf = spark_udf(spark, str(model.path), result_type="double", env_manager="local")
    return udf(F.struct(*model.inputs))


def score_spark(
    sp: ScoreParams,
    model: ServedVersion,
    sources: Mapping[str, Path],
    files: Mapping[str, Path],
    keys: Sequence[str],
    jdbc: Jdbc | None = None,
) -> dict[str, Any]:
    """Score every split on Spark (reading and writing through `jdbc` when given); returns the
    report (engine that ran, fallback reason, master, whether Python workers ran; per split the
    rows, speed, tasks and the driver's merge seconds; `table_rows` when written through JDBC)."""
    with spark_session(sp.batch_rows, [str(JAR)] if jdbc else []) as spark:
        expr, reason = None, ""
        if sp.engine == "spark-sql":
            expr, reason = sql_or_reason(spark, sp, model, next(iter(sources.values())))
        column = probability_column(spark, model, expr)
        report: dict[str, Any] = {
            "engine": "spark-sql" if expr is not None else "spark-udf",
            "fallback_reason": reason or None,
            "spark": {"master": spark.sparkContext.master, "version": spark.version},
            "splits": {},
        }
        for split, src in sources.items():
            start = time.perf_counter()
            df = read_input(spark, src, model, keys, sp.spark_partitions, jdbc)
            out = predictions(df, column, keys)
            report["python_workers"] = uses_python(out)
            with task_progress(spark, f"score {split}"):
                schema = pq.read_schema(src)
                rows, parts, merge = write_single(
                    out, files[split], model, keys, schema, sp.batch_rows
                )
            seconds = time.perf_counter() - start
            report["splits"][split] = speed(rows, seconds) | {
                "tasks": parts,
                "merge_seconds": round(merge, 3),
            }
            log.info(
                "%s: %d tasks, then %.1f s of %.1f s merging their files",
                split,
                parts,
                merge,
                seconds,
            )
        if jdbc is not None:
            with task_progress(spark, "table predictions"):
                report["table_rows"] = write_predictions(spark, jdbc, files, keys, sp.batch_rows)
    return report
