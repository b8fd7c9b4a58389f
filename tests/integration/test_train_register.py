"""train + register on a small real sample, MLflow in tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from flightdelay.core import registry
from flightdelay.core.config import load_params
from flightdelay.core.errors import UserError
from flightdelay.pipeline import promote
from flightdelay.pipeline import register as register_model
from flightdelay.pipeline import train as train_model

# train + register against a real MLflow registry, many times over: in `make test`, not in
# `make test-fast` (tests/unit/test_promotion.py covers the decisions without a registry)
pytestmark = pytest.mark.slow


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


def register(project: Path) -> dict:  # type: ignore[type-arg]
    register_model.main(
        "models/runs", "data/test.parquet", "reports/registry.json", "models/registered.json"
    )
    return json.loads((project / "reports/registry.json").read_text())  # type: ignore[no-any-return]


def client_for(project: Path) -> MlflowClient:
    uri = f"sqlite:///{project / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def versions(project: Path) -> list:  # type: ignore[type-arg]
    return list(client_for(project).search_model_versions("name='flightdelay'"))


def alias(project: Path, name: str) -> str:
    return str(client_for(project).get_model_version_by_alias("flightdelay", name).version)


def test_first_run_registers_each_variant_once_and_promotes_the_best(project: Path) -> None:
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
    report = register(project)

    client = client_for(project)
    assert len(versions(project)) == 2
    champion = client.get_model_version_by_alias("flightdelay", "champion")
    challenger = client.get_model_version_by_alias("flightdelay", "challenger")
    serving = client.get_model_version_by_alias("flightdelay", "serving")
    assert champion.tags["variant"] == "lasso" and challenger.tags["variant"] == "ridge"
    assert serving.version == champion.version
    assert champion.tags["git.sha"] and "data.train_md5" in champion.tags
    assert champion.tags["decision.action"] == "promote" and champion.tags["role"] == "champion"
    assert "variant `lasso`" in champion.description and "Decision" in champion.description
    run = client.get_run(champion.run_id)
    assert run.data.params["decision_threshold"] == "0.5"
    assert run.data.tags["fingerprint"] == champion.tags["fingerprint"]
    assert {"roc_auc", "pr_auc", "log_loss", "brier", "f1"} <= set(run.data.metrics)
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"train", "test"}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/roc_curve.png",
        "plots/confusion_matrix.png",
        "plots/top_coefficients.png",
    } <= artifacts
    assert report["decision"]["action"] == "promote"
    assert report["champion"] == champion.version


def test_run_records_hold_no_run_ids_and_reproduce_byte_for_byte(project: Path) -> None:
    train_all(project)
    first = {p.name: p.read_bytes() for p in (project / "models/runs").glob("*.json")}
    first |= {p.name + "m": p.read_bytes() for p in (project / "reports/metrics").glob("*.json")}
    train_all(project)
    again = {p.name: p.read_bytes() for p in (project / "models/runs").glob("*.json")}
    again |= {p.name + "m": p.read_bytes() for p in (project / "reports/metrics").glob("*.json")}
    assert first == again
    record = json.loads((project / "models/runs/lasso.json").read_text())
    assert set(record) == {"variant", "fingerprint", "metrics", "data"}
    # the same fingerprint finds the same run: no second run was logged
    client = client_for(project)
    exp = client.get_experiment_by_name("flightdelay")
    assert len(client.search_runs([exp.experiment_id])) == 2


def test_register_twice_registers_nothing_new_and_keeps_the_champion(project: Path) -> None:
    train_all(project)
    register(project)
    before = ({v.version for v in versions(project)}, alias(project, "champion"))
    report = register(project)
    assert ({v.version for v in versions(project)}, alias(project, "champion")) == before
    assert report["decision"]["action"] == "keep"


def test_a_candidate_within_the_margin_becomes_challenger_only(project: Path) -> None:
    train_all(project)
    register(project)
    champion = alias(project, "champion")
    set_params(project, train__variants__ridge__C=0.9, train__variants__lasso__C=0.09)
    train_all(project)
    report = register(project)
    assert alias(project, "champion") == champion
    assert report["decision"]["action"] == "challenger"
    assert report["decision"]["champion_score"] is not None  # re-scored on the same test data
    assert alias(project, "challenger") == str(report["candidate"]["version"])


def test_a_clearly_better_candidate_is_promoted_and_can_be_rolled_back(project: Path) -> None:
    set_params(project, train__variants__ridge__C=1e-6, train__variants__lasso__C=1e-6)
    set_params(project, register__min_value=0.0)
    train_all(project)
    register(project)
    weak = alias(project, "champion")
    set_params(project, train__variants__ridge__C=1.0)
    train_all(project)
    report = register(project)
    strong = alias(project, "champion")
    assert strong != weak and report["decision"]["action"] == "promote"
    assert report["decision"]["margin"] >= 0.002
    assert alias(project, "serving") == strong
    promote.rollback("bad deploy")
    assert alias(project, "champion") == weak and alias(project, "serving") == weak
    tags = client_for(project).get_model_version("flightdelay", weak).tags
    assert tags["champion.how"] == "rollback" and tags["champion.reason"] == "bad deploy"


def test_dvc_exp_run_never_moves_the_champion(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_params(project, train__variants__ridge__C=1e-6, train__variants__lasso__C=1e-6)
    set_params(project, register__min_value=0.0)
    train_all(project)
    register(project)
    champion = alias(project, "champion")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0" * 40)
    monkeypatch.setenv("DVC_EXP_NAME", "brave-cat")
    set_params(project, train__variants__ridge__C=1.0)
    train_all(project)
    report = register(project)
    assert report["decision"]["action"] == "candidate"
    assert alias(project, "champion") == champion and alias(project, "serving") == champion
    candidate = client_for(project).get_model_version("flightdelay", report["candidate"]["version"])
    assert candidate.tags["role"] == "candidate"
    run = client_for(project).get_run(candidate.run_id)
    assert run.data.tags["dvc.exp.name"] == "brave-cat"


def test_register_killed_after_the_alias_move_completes_on_rerun(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_all(project)
    real = registry.tag_version

    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as if killed between the alias move and the tags

    monkeypatch.setattr(registry, "tag_version", crash)
    with pytest.raises(KeyboardInterrupt):
        register(project)
    monkeypatch.setattr(registry, "tag_version", real)
    assert not any(v.tags.get("role") == "champion" for v in versions(project))
    n = len(versions(project))
    report = register(project)
    assert len(versions(project)) == n  # nothing registered twice
    champion = client_for(project).get_model_version_by_alias("flightdelay", "champion")
    assert champion.tags["role"] == "champion" and champion.tags["decision.action"] == "promote"
    assert report["decision"]["reason"] == "completed an interrupted register"


def test_failing_gate_moves_no_alias(project: Path) -> None:
    train_all(project)
    register(project)
    before = alias(project, "champion")
    n_before = len(versions(project))

    set_params(project, register__min_value=0.999)
    with pytest.raises(UserError, match=r"quality gate failed.*left unchanged"):
        register(project)
    assert alias(project, "champion") == before
    assert len(versions(project)) == n_before


def test_promote_refuses_other_inputs_unless_allowed(project: Path) -> None:
    train_all(project)
    register(project)
    champion = alias(project, "champion")
    other = next(str(v.version) for v in versions(project) if str(v.version) != champion)
    client = client_for(project)
    client.set_model_version_tag("flightdelay", other, "schema.inputs", "different")
    with pytest.raises(UserError, match="--allow-schema-change"):
        promote.promote(other, "try it")
    with pytest.raises(UserError, match="--reason is required"):
        promote.promote(other, " ", allow_schema_change=True)
    promote.promote(other, "new features", allow_schema_change=True)
    assert alias(project, "champion") == other and alias(project, "serving") == other
    assert client.get_model_version("flightdelay", other).tags["champion.previous"] == champion


def test_serving_pin_holds_until_cleared(project: Path) -> None:
    train_all(project)
    register(project)
    client = client_for(project)
    champion = alias(project, "champion")
    other = next(str(v.version) for v in versions(project) if str(v.version) != champion)
    registry.pin_serving(client, "flightdelay", other, "canary")
    assert alias(project, "serving") == other
    registry.set_champion(client, "flightdelay", champion, {"champion.how": "test"})
    assert alias(project, "serving") == other  # a pin holds while @champion moves
    assert registry.get_pin(client, "flightdelay")["reason"] == "canary"  # type: ignore[index]
    registry.clear_pin(client, "flightdelay")
    assert alias(project, "serving") == champion and registry.get_pin(client, "flightdelay") is None


def test_registered_model_is_self_contained(project: Path) -> None:
    """pyfunc from a process that cannot import flightdelay: one probability per raw row,
    equal to the pipeline's own answer on the coerced frame."""
    train_all(project)
    register(project)
    script = f"""
import sys
sys.path.append({sysconfig.get_paths()["purelib"]!r})  # site-packages without its .pth files
import numpy as np, pandas as pd, mlflow.pyfunc
assert not any(p.endswith("/src") for p in sys.path), sys.path
mlflow.set_tracking_uri("sqlite:///{project / "mlflow.db"}")
mlflow.set_registry_uri("sqlite:///{project / "mlflow.db"}")
m = mlflow.pyfunc.load_model("models:/flightdelay@champion")
rows = pd.read_parquet("{project / "data/test.parquet"}").drop(columns=["delayed"])
p = np.asarray(m.predict(rows))
assert p.shape == (len(rows),), p.shape
np.save("{project / "p.npy"}", p)
try:
    import flightdelay
    raise SystemExit("flightdelay importable")
except ImportError:
    pass
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script], cwd="/", env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    served = np.load(project / "p.npy")
    from flightdelay.core.model_code import coerce_frame, load_pipeline

    version = alias(project, "champion")
    source = client_for(project).get_model_version("flightdelay", version).source
    path = source.removeprefix("file://") + "/artifacts/pipeline.skops"
    tp = load_params().train
    rows = pd.read_parquet(project / "data/test.parquet")
    expected = load_pipeline(path).predict_proba(coerce_frame(rows, tp.categorical, tp.numeric))
    np.testing.assert_allclose(served, expected[:, 1], rtol=0, atol=1e-12)


def test_unknown_variant_is_clear(project: Path) -> None:
    with pytest.raises(UserError, match="unknown variant 'elastic'"):
        train_model.main("elastic", "data", "m", "p", "r")
