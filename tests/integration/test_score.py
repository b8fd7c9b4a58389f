"""Stage score on a tiny real model registered at @serving in a temporary MLflow store.

The pandas engine against the pyfunc and the service's compiled scorer; the Spark engines
(marked slow, skipped only when pyspark is not importable) against the pandas engine.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from flightdelay.cli import user_errors
from flightdelay.core.config import SERVING_ALIAS
from flightdelay.core.db import arrow_table, write_parquet
from flightdelay.core.model_code import coerce_frame
from flightdelay.pipeline import score, score_cli
from flightdelay.serving.runtime.compile import compile_pipeline
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
    score_cli.register(app, user_errors)
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
