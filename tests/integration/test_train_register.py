"""train + register on a small real sample, MLflow in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from flightdelay.core.config import load_params
from flightdelay.core.errors import UserError
from flightdelay.pipeline import register as register_model
from flightdelay.pipeline import train as train_model


def synthetic_split(rows: int, seed: int) -> pd.DataFrame:
    """Rows with every feature column of params.yaml and a label that depends on them."""
    params = load_params()
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {c: rng.choice(["a", "b", "c", None], rows) for c in params.train.categorical}
    )
    for c in params.train.numeric:
        frame[c] = rng.normal(size=rows)
    frame.loc[rng.random(rows) < 0.1, params.train.numeric[0]] = np.nan
    signal = frame[params.train.numeric[1]].fillna(0) + (frame[params.train.categorical[0]] == "a")
    frame[params.train.target] = (signal + rng.normal(scale=0.8, size=rows) > 0.5).astype(int)
    return frame


@pytest.fixture
def project(in_tmp_project: Path) -> Path:
    data = in_tmp_project / "data"
    data.mkdir()
    synthetic_split(600, 1).to_parquet(data / "train.parquet", index=False)
    synthetic_split(300, 2).to_parquet(data / "test.parquet", index=False)
    return in_tmp_project


def set_params(project: Path, **changes: object) -> None:
    raw = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = raw
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node[key]
        node[leaf] = value
    (project / "params.yaml").write_text(yaml.safe_dump(raw))


def train_all(project: Path) -> None:
    for variant in load_params().train.variants:
        train_model.main(variant, "data", "reports/metrics", "reports/plots", "models/runs")


def test_two_versions_with_aliases_by_metric(project: Path) -> None:
    # make ridge clearly worse: a tiny C starves it of signal
    set_params(project, train__variants__ridge__C=1e-6)
    train_all(project)
    metrics = {
        v: json.loads((project / f"reports/metrics/{v}.json").read_text())
        for v in ("lasso", "ridge")
    }
    assert metrics["lasso"]["roc_auc"] > metrics["ridge"]["roc_auc"]
    for v in ("lasso", "ridge"):
        assert (project / f"reports/plots/{v}/roc.csv").is_file()
    register_model.main("models/runs", "reports/registry.json")

    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    versions = client.search_model_versions("name='flightdelay'")
    assert len(versions) == 2
    champion = client.get_model_version_by_alias("flightdelay", "champion")
    challenger = client.get_model_version_by_alias("flightdelay", "challenger")
    assert champion.tags["variant"] == "lasso" and challenger.tags["variant"] == "ridge"
    assert champion.tags["git_sha"] and "data.train_md5" in champion.tags
    run = client.get_run(champion.run_id)
    assert run.data.params["decision_threshold"] == "0.5"
    assert {"roc_auc", "pr_auc", "log_loss", "brier", "f1"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/roc_curve.png",
        "plots/confusion_matrix.png",
        "plots/top_coefficients.png",
    } <= artifacts
    report = json.loads((project / "reports/registry.json").read_text())
    assert report["aliases"] == {"champion": champion.version, "challenger": challenger.version}


def test_failing_gate_moves_no_alias(project: Path) -> None:
    train_all(project)
    register_model.main("models/runs", "reports/registry.json")
    client = MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    before = client.get_model_version_by_alias("flightdelay", "champion").version
    n_before = len(client.search_model_versions("name='flightdelay'"))

    set_params(project, register__min_value=0.999)
    with pytest.raises(UserError, match=r"quality gate failed.*left unchanged"):
        register_model.main("models/runs", "reports/registry.json")
    assert client.get_model_version_by_alias("flightdelay", "champion").version == before
    assert len(client.search_model_versions("name='flightdelay'")) == n_before


def test_unknown_variant_is_clear(project: Path) -> None:
    with pytest.raises(UserError, match="unknown variant 'elastic'"):
        train_model.main("elastic", "data", "m", "p", "r")
