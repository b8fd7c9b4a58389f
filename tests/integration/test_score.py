"""Stage score on a tiny real model registered at @serving in a temporary MLflow store.

The pandas engine against the pyfunc and the service's compiled scorer; the Spark engines
(marked slow, skipped only when pyspark is not importable) against the pandas engine.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from sqlalchemy import text
from typer.testing import CliRunner

from flightdelay.cli import user_errors
from flightdelay.core.config import SERVING_ALIAS, VariantParams
from flightdelay.core.db import arrow_table, make_engine, write_parquet
from flightdelay.core.estimator import build_pipeline
from flightdelay.core.model_code import coerce_frame
from flightdelay.pipeline import score, score_cli
from flightdelay.serving.runtime.compile import compile_pipeline
from tests.conftest import venv_env
from tests.helpers.serving import (
    CATEGORICAL,
    MODEL,
    NUMERIC,
    register_tiny,
    settings_for,
    tiny_frame,
)

KEYS = ["time_hour", "carrier", "flight", "origin"]
OUTPUT = [*KEYS, "probability", "label", "model_name", "model_version", "run_id"]
SPARK = importlib.util.find_spec("pyspark") is not None
needs_spark = pytest.mark.skipif(not SPARK, reason="pyspark is not installed (pip install pyspark)")


def feature_split(rows: int, seed: int) -> pd.DataFrame:
    """Key columns + the tiny model's features (missing values in each) + a label."""
    frame, y = tiny_frame(rows, seed)
    keys = pd.DataFrame(
        {
            "time_hour": pd.date_range("2013-01-01", periods=rows, freq="h", tz="UTC"),
            "flight": np.arange(rows, dtype=np.int64) + 100 * seed,
        }
    )
    return pd.concat([keys, frame], axis=1).assign(delayed=y)


def set_params(project: Path, **score_knobs: Any) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["register"]["model_name"] = MODEL
    params["score"] = {"batch_rows": 150, **score_knobs}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def project(in_tmp_project: Path) -> Path:
    """A tmp project: feature splits under data/processed and `tiny` v1 at @serving."""
    for split, rows, seed in (("train", 500, 3), ("test", 300, 4)):
        frame = feature_split(rows, seed)
        write_parquet(arrow_table(frame), in_tmp_project / f"data/processed/{split}.parquet")
    set_params(in_tmp_project)
    register_tiny(settings_for(in_tmp_project), alias=SERVING_ALIAS)
    return in_tmp_project


def run_stage(project: Path) -> dict[str, Any]:
    score.main("data/processed", "data/predictions")
    report: dict[str, Any] = json.loads((project / "data/predictions/score.json").read_text())
    return report


def served(project: Path, tmp: Path) -> score.ServedVersion:
    from flightdelay.core.tracking import Tracking

    return score.served_version(Tracking(settings_for(project)), MODEL, tmp)


def test_pandas_engine_equals_the_pyfunc_and_the_compiled_scorer(project: Path) -> None:
    report = run_stage(project)
    assert report["engine"] == "pandas" and report["model"]["version"] == 1
    assert sorted(p.name for p in (project / "data/predictions").iterdir()) == [
        "score.json",
        "test.parquet",
        "train.parquet",
    ]
    model = served(project, project / "dl")
    for split in score.SPLITS:
        source = pd.read_parquet(project / f"data/processed/{split}.parquet")
        out = pd.read_parquet(project / f"data/predictions/{split}.parquet")
        assert list(out.columns) == OUTPUT and len(out) == len(source)
        pd.testing.assert_frame_equal(out[KEYS], source[KEYS])
        pyfunc = np.asarray(model.pyfunc.predict(source[model.inputs]), dtype=float)
        np.testing.assert_allclose(out["probability"], pyfunc, rtol=0, atol=1e-9)
        scorer = compile_pipeline(_pipeline(model))
        columns = coerce_frame(source, CATEGORICAL, NUMERIC)
        compiled = scorer.score_columns({c: columns[c].tolist() for c in columns}, len(source))
        np.testing.assert_allclose(out["probability"], compiled, rtol=0, atol=1e-9)
        assert (out["label"] == (out["probability"] >= 0.5).astype(int)).all()
        assert set(out["model_name"]) == {MODEL} and set(out["model_version"]) == {1}
        assert set(out["run_id"]) == {model.run_id}


def _pipeline(model: score.ServedVersion) -> Any:
    from flightdelay.core.model_code import load_pipeline

    return load_pipeline(str(model.pipeline_file))


def test_predictions_table_holds_every_row(project: Path) -> None:
    run_stage(project)
    with sqlite3.connect(project / "flights.db") as conn:
        rows = conn.execute(
            "SELECT split, COUNT(*), MIN(model_version), MAX(label) FROM predictions GROUP BY split"
        ).fetchall()
        first = conn.execute("SELECT time_hour, probability FROM predictions LIMIT 1").fetchone()
    assert sorted(rows) == [("test", 300, 1, 1), ("train", 500, 1, 1)]
    out = pd.read_parquet(project / "data/predictions/train.parquet")
    assert first == ("2013-01-01 00:00:00+00:00", out["probability"].iloc[0])


def test_rerun_writes_the_same_bytes(project: Path) -> None:
    run_stage(project)
    first = {s: (project / f"data/predictions/{s}.parquet").read_bytes() for s in score.SPLITS}
    run_stage(project)
    again = {s: (project / f"data/predictions/{s}.parquet").read_bytes() for s in score.SPLITS}
    assert first == again


def cli(*args: str) -> Any:
    app = typer.Typer()
    score_cli.register(app, user_errors, lambda f: f)  # no re-exec inside pytest
    app.command("other")(lambda: None)  # two commands: `score` stays a subcommand
    return CliRunner().invoke(app, ["score", *args])


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("engine", "invalid parameter score.engine"),
        ("alias", "has no @serving"),
        ("data", "not found: run `dvc repro features` first"),
        ("key", "column(s) nope missing (features.key)"),
    ],
)
def test_bad_input_is_one_line(project: Path, change: str, needle: str) -> None:
    if change == "engine":
        set_params(project, engine="dask")
    elif change == "alias":
        from mlflow.tracking import MlflowClient

        uri = f"sqlite:///{project / 'mlflow.db'}"
        MlflowClient(uri, uri).delete_registered_model_alias(MODEL, SERVING_ALIAS)
    elif change == "data":
        (project / "data/processed/test.parquet").unlink()
    else:
        params = yaml.safe_load((project / "params.yaml").read_text())
        params["features"]["key"] = ["time_hour", "nope"]
        (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    result = cli("--data-dir", "data/processed", "--out-dir", "data/predictions")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_data_the_model_cannot_score_fails_first_and_keeps_the_predictions(project: Path) -> None:
    report = run_stage(project)
    assert report["check_seconds"] >= 0
    before = {p.name: p.read_bytes() for p in (project / "data/predictions").glob("*.parquet")}
    src = project / "data/processed/train.parquet"
    frame = pd.read_parquet(src)
    frame[NUMERIC[0]] = "not a number"
    write_parquet(arrow_table(frame), src)
    result = cli("--data-dir", "data/processed", "--out-dir", "data/predictions")
    assert result.exit_code == 1
    errors = [x for x in result.stderr.splitlines() if x.strip() and "it/s]" not in x]  # no bars
    assert len(errors) == 1 and errors[0].startswith("error: "), errors
    assert "cannot score these rows" in errors[0] and "Traceback" not in result.stderr
    after = {p.name: p.read_bytes() for p in (project / "data/predictions").glob("*.parquet")}
    assert after == before


def test_sql_expression_is_the_linear_scorer() -> None:
    """The pure SQL builder: one CASE per categorical, exact literals, quoting."""
    from flightdelay.pipeline.score_sql import category_term, linear_expression

    frame, y = tiny_frame()
    variant = VariantParams(penalty="l2", C=1.0, solver="lbfgs", max_iter=200)
    scorer = compile_pipeline(build_pipeline(CATEGORICAL, NUMERIC, variant, 0).fit(frame, y))
    types = {"carrier": "string", "origin": "string", "distance": "double", "temp": "double"}
    expr = linear_expression(scorer, types)
    assert expr.count("ELSE 0.0D END") == 2 and expr.startswith("1.0D / (1.0D + exp(-(")
    assert f"({scorer.bias!r}D)".replace("e", "E") in expr
    term = category_term("o'k", "string", {"it's": 0.5, None: -1.0})
    assert (
        term
        == "(CASE WHEN `o'k` IS NULL THEN (-1.0D) WHEN `o'k` = 'it\\'s' THEN (0.5D) ELSE 0.0D END)"
    )
    assert "CAST(`n` AS STRING) = '3'" in category_term("n", "bigint", {"3": 1.0})


# ------------------------------------------------------------------------------------------
# Spark engines (local[*]): the same predictions as the pandas engine within 1e-9
# ------------------------------------------------------------------------------------------


def pandas_then(project: Path, engine: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """The pandas engine's predictions, then `engine`'s report (its files replace them)."""
    run_stage(project)
    base = {s: pd.read_parquet(project / f"data/predictions/{s}.parquet") for s in score.SPLITS}
    set_params(project, engine=engine)
    return base, run_stage(project)


def assert_same_predictions(project: Path, base: dict[str, pd.DataFrame]) -> None:
    names = sorted(p.name for p in (project / "data/predictions").iterdir())
    assert names == ["score.json", "test.parquet", "train.parquet"]  # no part files left
    for split, expected in base.items():
        got = pd.read_parquet(project / f"data/predictions/{split}.parquet")
        assert list(got.columns) == OUTPUT
        pd.testing.assert_frame_equal(got[KEYS], expected[KEYS])  # file order kept
        np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-9)
        rest = ["label", "model_name", "model_version", "run_id"]
        pd.testing.assert_frame_equal(got[rest], expected[rest], check_dtype=False)


@pytest.mark.slow
@needs_spark
def test_spark_udf_equals_pandas(project: Path) -> None:
    base, report = pandas_then(project, "spark-udf")
    assert report["engine"] == "spark-udf" and report["python_workers"] is True
    assert report["spark"]["master"].startswith("local")
    assert_same_predictions(project, base)


@pytest.mark.slow
@needs_spark
def test_spark_sql_equals_pandas_with_no_python_worker(project: Path) -> None:
    base, report = pandas_then(project, "spark-sql")
    assert report["engine"] == "spark-sql" and report["fallback_reason"] is None
    assert report["python_workers"] is False
    assert_same_predictions(project, base)


@pytest.mark.slow
@needs_spark
def test_spark_sql_falls_back_to_the_udf_for_a_model_that_does_not_compile(
    project: Path,
) -> None:
    frame, y = tiny_frame()
    variant = VariantParams(penalty="l2", C=1.0, solver="lbfgs", max_iter=200)
    pipeline = build_pipeline(CATEGORICAL, NUMERIC, variant, 0)
    pipeline.set_params(preprocess__cat__min_frequency=5).fit(frame, y)
    register_tiny(settings_for(project), alias=SERVING_ALIAS, pipeline=pipeline)
    base, report = pandas_then(project, "spark-sql")
    assert report["engine"] == "spark-udf" and report["model"]["version"] == 2
    assert "does not compile" in report["fallback_reason"]
    assert_same_predictions(project, base)


# Beyond score_sql.LEAF categories (a binary search), not ASCII-only (Spark's byte order)
MANY = [f"C{i:02d}" for i in range(30)] + ["Z9", "a1", "ÄX", "éB", "日本"]


@pytest.mark.slow
@needs_spark
def test_spark_sql_keeps_the_file_order_over_many_tasks_and_many_categories(
    project: Path,
) -> None:
    """Splits of many small row groups over 5 tasks each, and a model with 35 carriers: the
    expression (a binary search over them) runs, and the rows come out in the file's order."""
    import pyarrow.parquet as pq

    frames = {}
    for split, rows, seed in (("train", 900, 5), ("test", 400, 6)):
        frame = feature_split(rows, seed)
        rng = np.random.default_rng(seed)
        frame["carrier"] = pd.Series(rng.choice([*MANY, None], rows), dtype=object)
        frame["delayed"] = (frame["carrier"].isin(MANY[::3]) | (rng.random(rows) < 0.2)) * 1
        frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # keys unsorted
        pq.write_table(arrow_table(frame), project / f"data/processed/{split}.parquet", 37)
        frames[split] = frame
    variant = VariantParams(penalty="l2", C=1.0, solver="lbfgs", max_iter=500)
    pipeline = build_pipeline(CATEGORICAL, NUMERIC, variant, 0)
    train = frames["train"]
    pipeline.fit(coerce_frame(train, CATEGORICAL, NUMERIC), train["delayed"].to_numpy())
    register_tiny(settings_for(project), alias=SERVING_ALIAS, pipeline=pipeline)
    run_stage(project)
    out = project / "data/predictions"
    base = {s: pd.read_parquet(out / f"{s}.parquet") for s in score.SPLITS}
    layout = {s: parquet_layout(out / f"{s}.parquet") for s in score.SPLITS}
    set_params(project, engine="spark-sql", spark_partitions=5)
    report = run_stage(project)
    assert report["engine"] == "spark-sql" and report["fallback_reason"] is None
    assert report["model"]["version"] == 2
    assert all(report["splits"][s]["tasks"] >= 3 for s in score.SPLITS), report["splits"]
    assert_same_predictions(project, base)
    for split, want in layout.items():  # the pandas engine's columns, types and row groups
        assert parquet_layout(out / f"{split}.parquet") == want


def parquet_layout(path: Path) -> tuple[Any, list[int]]:
    """A parquet file's Arrow schema and rows per row group."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return meta.schema.to_arrow_schema(), [
        meta.row_group(i).num_rows for i in range(meta.num_row_groups)
    ]


# --------------------------------------------------------------------------------------------
# PostgreSQL: the Spark engines read the feature table and write `predictions` through JDBC
# --------------------------------------------------------------------------------------------

CUTOFF = "2013-06-01T00:00:00Z"


@pytest.fixture
def pg_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """`project` on a throwaway PostgreSQL whose feature table holds the rows of both splits
    (test a year later: a time split at CUTOFF selects them again)."""
    from flightdelay.stack.pgcluster import throwaway_postgres

    train, test = feature_split(500, 3), feature_split(300, 4)
    test["time_hour"] = test["time_hour"] + pd.DateOffset(years=1)
    for split, frame in (("train", train), ("test", test)):
        write_parquet(arrow_table(frame), project / f"data/processed/{split}.parquet")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["features"]["split"] = {"strategy": "time", "column": "time_hour", "cutoff": CUTOFF}
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with throwaway_postgres() as info:
        engine = make_engine(info["features"])
        pd.concat([test, train]).to_sql("flight_features", engine, index=False)  # any order
        engine.dispose()
        monkeypatch.setenv("DATABASE_URL", info["features"])
        yield project, info["features"]


def stage_process(project: Path) -> dict[str, Any]:
    """`flightdelay score` as its own process (as `make score` runs it): a JVM started with
    the JDBC driver on its class path (a JVM already started in this process has not)."""
    cmd = [sys.executable, "-m", "flightdelay.cli", "score", "--data-dir", "data/processed"]
    done = subprocess.run(
        [*cmd, "--out-dir", "data/predictions"],
        cwd=project,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads((project / "data/predictions/score.json").read_text())
    return report


def pg_predictions(url: str) -> pd.DataFrame:
    engine = make_engine(url)
    with engine.connect() as conn:
        names = set(conn.execute(text("SELECT tablename FROM pg_tables")).scalars())
        frame = pd.read_sql(text("SELECT * FROM predictions"), conn)
    engine.dispose()
    assert "predictions__new" not in names
    return frame


@pytest.mark.slow
@needs_spark
@pytest.mark.parametrize("engine", ["spark-sql", "spark-udf"])
def test_spark_reads_and_writes_postgres_through_jdbc(
    pg_project: tuple[Path, str], engine: str
) -> None:
    project, url = pg_project
    run_stage(project)  # pandas: the export in, the bulk loader (COPY) out
    base = {s: pd.read_parquet(project / f"data/predictions/{s}.parquet") for s in score.SPLITS}
    set_params(project, engine=engine)
    report = stage_process(project)
    assert report["input"] == {"source": "jdbc", "why_not_jdbc": None}
    assert report["engine"] == engine and report["table"]["rows"] == 800
    assert_same_predictions(project, base)  # same rows, order and probabilities as pandas
    table = pg_predictions(url)
    assert sorted(table.columns) == sorted(["split", *OUTPUT])
    for split, expected in base.items():
        got = table[table["split"] == split].sort_values("time_hour").reset_index(drop=True)
        assert len(got) == len(expected)
        assert (got["time_hour"] == expected["time_hour"]).all()  # instants survive JDBC
        np.testing.assert_allclose(got["probability"], expected["probability"], rtol=0, atol=1e-9)
        assert (got["label"] == expected["label"]).all()


def test_jdbc_input_needs_a_split_sql_can_select(pg_project: tuple[Path, str]) -> None:
    from flightdelay.core.params import load_params
    from flightdelay.pipeline.score_jdbc import jdbc_target

    project, url = pg_project
    sources = {s: project / f"data/processed/{s}.parquet" for s in score.SPLITS}
    params = load_params(project / "params.yaml")
    jdbc, why = jdbc_target(url, params, sources)
    assert jdbc is not None and why == "" and "password" not in repr(jdbc)
    assert jdbc.url.startswith("jdbc:postgresql://127.0.0.1:") and "@" not in jdbc.url
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["features"]["split"] = {"strategy": "random", "test_fraction": 0.2, "seed": 1}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    assert jdbc_target(url, load_params(project / "params.yaml"), sources) == (
        None,
        "features.split random has no SQL form",
    )
    raw["features"]["split"] = {"strategy": "time", "column": "time_hour", "cutoff": "2013-01-05"}
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    jdbc, why = jdbc_target(url, load_params(project / "params.yaml"), sources)
    assert jdbc is None and why.startswith("the train query has 96 rows")
