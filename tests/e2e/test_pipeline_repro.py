"""The main job end to end: `dvc repro` on the real data in a fresh copy of the repo.

One module-scoped run (about 80 s) backs every assertion here, including the notebook.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from tests.conftest import EMBEDDED, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(reproduced_repo: Path) -> Path:
    return reproduced_repo


@pytest.fixture
def own_copy(reproduced_repo: Path, tmp_path: Path) -> Path:
    """A copy of the reproduced repo (data, DB, MLflow store and all) that only this test
    mutates."""
    dest = tmp_path / "copy"
    shutil.copytree(reproduced_repo, dest, symlinks=True)
    return dest


def client(repo: Path) -> MlflowClient:
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    return MlflowClient(uri, uri)


def test_two_runs_two_versions_and_aliases(repo: Path) -> None:
    c = client(repo)
    exp = c.get_experiment_by_name("flightdelay")
    runs = c.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["variant"] for r in runs) == ["lasso", "ridge"]
    versions = c.search_model_versions("name='flightdelay'")
    assert len(versions) == 2
    champ = c.get_model_version_by_alias("flightdelay", "champion")
    chall = c.get_model_version_by_alias("flightdelay", "challenger")
    serving = c.get_model_version_by_alias("flightdelay", "serving")
    metric = {v.version: float(c.get_run(v.run_id).data.metrics["roc_auc"]) for v in versions}
    assert metric[champ.version] >= metric[chall.version] >= 0.6
    assert serving.version == champ.version
    registry = json.loads((repo / "reports/registry.json").read_text())
    assert registry["champion"] == int(champ.version)
    assert registry["decision"]["action"] == "promote"


def test_fresh_clone_reproduces_every_tracked_file(repo: Path) -> None:
    """dvc.lock, metrics, plots and run records come out byte for byte as committed."""
    assert run(["git", "status", "--porcelain"], repo).stdout == ""


def test_metrics_diff_against_head_works(repo: Path, tmp_path: Path) -> None:
    out = run(["dvc", "metrics", "diff", "HEAD", "--json"], repo).stdout
    assert json.loads(out) == {}  # committed metrics = reproduced metrics
    run(["dvc", "params", "diff", "HEAD"], repo)
    run(["dvc", "plots", "diff", "HEAD", "-o", str(tmp_path / "diff")], repo)


def test_metrics_and_plots_show(repo: Path, tmp_path: Path) -> None:
    out = run(["dvc", "metrics", "show", "--json"], repo).stdout
    shown = json.loads(out)
    files = next(iter(shown.values()))["data"]
    assert {Path(p).name for p in files} == {"lasso.json", "ridge.json"}
    run(["dvc", "plots", "show", "-o", str(tmp_path / "html")], repo)  # not inside a stage dep
    assert (tmp_path / "html/index.html").stat().st_size > 1000


def test_raw_data_matches_the_package(repo: Path) -> None:
    load = json.loads((repo / "data/interim/load_report.json").read_text())
    assert load["tables"]["flights"]["rows"] == 336_776
    assert load["tables"]["weather"]["rows"] == 26_115


def test_second_repro_runs_nothing_but_the_target_check(repo: Path) -> None:
    c = client(repo)
    before = len(c.search_model_versions("name='flightdelay'"))
    out = run(["dvc", "repro"], repo).stdout
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert ran == ["Running stage 'target':"], out
    assert len(c.search_model_versions("name='flightdelay'")) == before
    assert run(["git", "status", "--porcelain"], repo).stdout == ""


def test_param_change_reruns_only_ridge_and_register(repo: Path) -> None:
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("C: 1.0", "C: 0.7", 1))
        out = run(["dvc", "status", "--json"], repo).stdout
        assert set(json.loads(out)) == {"target", "train@ridge", "compare", "register"}
    finally:
        params.write_text(original)


def test_exp_run_appears_in_mlflow_but_never_moves_the_champion(own_copy: Path) -> None:
    repo = own_copy
    c = client(repo)
    exp_id = c.get_experiment_by_name("flightdelay").experiment_id
    before = len(c.search_runs([exp_id]))
    champion = c.get_model_version_by_alias("flightdelay", "champion").version
    run(["dvc", "exp", "run", "-S", "train.variants.ridge.C=0.5"], repo)
    runs = c.search_runs([exp_id], order_by=["start_time DESC"])
    assert len(runs) == before + 1
    assert runs[0].data.tags["variant"] == "ridge" and runs[0].data.params["C"] == "0.5"
    assert runs[0].data.tags["dvc.exp.baseline"]
    assert c.get_model_version_by_alias("flightdelay", "champion").version == champion
    assert c.get_model_version_by_alias("flightdelay", "serving").version == champion
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert "!" not in json.dumps(json.loads(shown)[0]["rev"])


def test_switching_the_database_reruns_what_writes_there(own_copy: Path) -> None:
    """A new DATABASE_URL re-runs load and features into it, without `dvc repro -f`; the data
    that comes out is the same, so nothing downstream re-runs."""
    out = run(["dvc", "repro"], own_copy, DATABASE_URL="sqlite:///data/interim/other.db").stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert ran == {"target", "load", "features"}, out
    assert (own_copy / "data/interim/other.db").stat().st_size > 1_000_000
    back = run(["dvc", "repro"], own_copy).stdout  # and back: the lock is as committed again
    assert "Running stage 'load'" in back
    assert run(["git", "status", "--porcelain"], own_copy).stdout == ""


def test_notebook_executes_against_the_db(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = repo / "notebooks" / "1.0-fd-flight-delay-eda.ipynb"
    nb = nbformat.read(path, as_version=4)
    monkeypatch.chdir(repo)
    for key, value in EMBEDDED.items():
        monkeypatch.setenv(key, value)
    NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(repo)}}
    ).execute()
    outputs = "".join(str(o.get("text", "")) for cell in nb.cells for o in cell.get("outputs", []))
    assert "positive rate" in outputs
