"""Shared fixtures: the repo root, a clean settings cache, and a tiny real feature DB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flightdelay.core.config import clear_settings_cache

ROOT = Path(__file__).resolve().parents[1]

# The embedded default, spelled out so a developer's .env never leaks into a test.
EMBEDDED = {
    "DATABASE_URL": "sqlite:///data/interim/flights.db",
    "MLFLOW_TRACKING_URI": "sqlite:///mlflow.db",
    "MLFLOW_ARTIFACT_ROOT": "mlruns",
}


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Every test reads settings anew, and leaves no MLflow URI or credential behind."""
    # mlflow.set_tracking_uri / set_registry_uri also write MLFLOW_TRACKING_URI /
    # MLFLOW_REGISTRY_URI into os.environ: put those back too.
    keys = (
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
    )
    saved = {k: os.environ.get(k) for k in keys}
    clear_settings_cache()
    yield
    clear_settings_cache()
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def in_tmp_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = a temp folder holding a copy of params.yaml; DB and MLflow stores inside it."""
    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'flights.db'}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlruns"))
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def venv_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for subprocesses: the project's venv first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra or {})
    return env


def copy_repo(dest: Path) -> Path:
    """The working tree's tracked and unignored files, committed as a fresh git repo at `dest`."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for cmd in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ):
        subprocess.run(cmd, cwd=dest, check=True)
    return dest


def run(cmd: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in `cwd` with the venv and the embedded settings; fail the test on error."""
    proc = subprocess.run(
        cmd, cwd=cwd, env=venv_env(EMBEDDED | env), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def reproduced_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh copy of the repo after a full `dvc repro` on the real data (about 70 s, once)."""
    dest = copy_repo(tmp_path_factory.mktemp("clone"))
    (dest / ".env").unlink(missing_ok=True)
    run(["dvc", "repro"], dest)
    return dest
