"""The second dataset: a fresh copy of the repo, the example applied by copying files only
(the lines of examples/breast_cancer/README.md, run as they are), then the whole `dvc repro`,
`flightdelay serve` and a POST to /predict: files source, join, text target, SQL-derived
categorical, stratified split, training, registration and serving, with no Python edit.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from flightdelay.core.config import load_params
from tests.conftest import EMBEDDED, ROOT, copy_repo, run, venv_env
from tests.helpers.http import free_port, wait_until

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples/breast_cancer"


def readme_commands() -> list[str]:
    """The lines of the README's "apply the example" block."""
    text = (EXAMPLE / "README.md").read_text()
    block = re.search(r"```bash\n# apply the example\n(.*?)```", text, re.S)
    assert block, "examples/breast_cancer/README.md lost its 'apply the example' block"
    return [line for line in block.group(1).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = copy_repo(tmp_path_factory.mktemp("breast_cancer"))
    (dest / ".env").unlink(missing_ok=True)
    for line in readme_commands():
        assert line.startswith("cp "), line  # copying files is all it takes
        subprocess.run(line, shell=True, cwd=dest, check=True)
    run(["dvc", "repro"], dest, PYTHONPATH=str(dest / "src"))
    return dest


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_only_params_sql_and_external_files_change(repo: Path) -> None:
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    written = ("dvc.lock", "reports/metrics/", "reports/plots/", "reports/compare/")
    changed = {line[3:] for line in out.splitlines() if not line[3:].startswith(written)}
    assert changed == {
        "params.yaml",
        "src/flightdelay/sql/schema.sql",
        "src/flightdelay/sql/features.sql",
        "data/external/patients.csv",
        "data/external/measurements.parquet",
    }


def test_features_join_label_and_split(repo: Path) -> None:
    params = load_params(repo / "params.yaml")
    train = pd.read_parquet(repo / "data/processed/train.parquet")
    test = pd.read_parquet(repo / "data/processed/test.parquet")
    assert len(train) + len(test) == 569 and len(test) == round(212 * 0.2) + round(357 * 0.2)
    assert set(train["patient_id"]).isdisjoint(test["patient_id"])
    for part in (train, test):
        assert set(part["diagnosis"]) == {"malignant", "benign"}
        assert set(part["size_bucket"]) == {"small", "medium", "large"}
        assert part["patient_id"].is_monotonic_increasing  # features.key order
        assert set(params.train.categorical + params.train.numeric) <= set(part.columns)
        assert part[params.train.numeric].notna().all().all()  # every patient joined
    share = (test["diagnosis"] == "malignant").mean()
    assert abs(share - 212 / 569) < 0.01  # stratified


def test_rerun_gives_the_same_bytes(repo: Path) -> None:
    files = [
        "data/processed/train.parquet",
        "data/processed/test.parquet",
        "data/raw/patients.parquet",
    ]
    before = {f: md5(repo / f) for f in files}
    run(["dvc", "repro", "-f", "get_data", "load", "features"], repo, PYTHONPATH=str(repo / "src"))
    assert {f: md5(repo / f) for f in files} == before


def test_an_edited_file_reruns_get_data_and_fails_its_hash_check(repo: Path) -> None:
    path = repo / "data/external/patients.csv"
    original = path.read_bytes()
    try:
        path.write_bytes(original.replace(b"malignant", b"Malignant", 1))
        status = run(["dvc", "status", "get_data"], repo, PYTHONPATH=str(repo / "src")).stdout
        assert "data/external" in status
        proc = subprocess.run(
            ["dvc", "repro", "get_data"],
            cwd=repo,
            env=venv_env({"PYTHONPATH": str(repo / "src")}),
            capture_output=True,
            text=True,
        )
        assert proc.returncode != 0
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, proc.stderr[-2000:]
        assert errors[0].startswith("error: data/external/patients.csv: sha256")
        assert "get_data.files.patients.sha256" in errors[0]
    finally:
        path.write_bytes(original)


def test_the_notebook_is_generic(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nb = nbformat.read(repo / "notebooks/1.0-fd-flight-delay-eda.ipynb", as_version=4)
    monkeypatch.chdir(repo / "notebooks")  # as `jupyter execute notebooks/…` does
    for key, value in EMBEDDED.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PYTHONPATH", str(repo / "src"))
    NotebookClient(
        nb,
        timeout=180,
        kernel_name="python3",
        resources={"metadata": {"path": str(repo / "notebooks")}},
    ).execute()
    outputs = [o for cell in nb.cells for o in cell.get("outputs", [])]
    text = "".join(str(o.get("text", "")) for o in outputs)
    assert "tumour_features" in text and "positive rate (diagnosis = 'malignant'): 37.3%" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # size_bucket, then the numeric grid: charts are in the notebook


def test_the_example_is_registered_served_and_answers(repo: Path) -> None:
    import httpx
    import mlflow.pyfunc
    import numpy as np

    params = load_params(repo / "params.yaml")
    name = params.registry.model_name
    uri = f"sqlite:///{repo / 'mlflow.db'}"
    metrics = {
        v: json.loads((repo / f"reports/metrics/{v}.json").read_text())
        for v in params.train.variants
    }
    assert all(m["roc_auc"] > 0.95 for m in metrics.values()), metrics
    port = free_port()
    env = venv_env(EMBEDDED | {"PYTHONPATH": str(repo / "src"), "API_PORT": str(port)})
    env.pop("MODEL_NAME", None)  # the launcher fills it from params.yaml register.model_name
    proc = subprocess.Popen(
        ["flightdelay", "serve"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(f"{url}/ready", proc)
        test = pd.read_parquet(repo / "data/processed/test.parquet")
        cols = [*params.train.categorical, *params.train.numeric]
        record = {c: (v.item() if hasattr(v, "item") else v) for c, v in test[cols].iloc[0].items()}
        answer = httpx.post(f"{url}/predict", json=record, timeout=10)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"]["name"] == name
        import mlflow

        mlflow.set_tracking_uri(uri)  # conftest puts MLflow's globals back after the test
        mlflow.set_registry_uri(uri)
        pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@serving")
        expected = float(np.asarray(pyfunc.predict(test[cols].head(1)))[0])
        assert abs(body["predictions"][0]["probability"] - expected) < 1e-9
    finally:
        proc.terminate()
        proc.wait(timeout=30)
