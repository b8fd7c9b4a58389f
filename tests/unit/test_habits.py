"""The project's habits hold: the README's test command lints first, CI files are valid."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_make_test_runs_lint_first_and_ci_calls_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_rule = re.search(r"^test: (.*?)##", makefile, re.M)
    assert test_rule and test_rule.group(1).split()[0] == "lint"
    lint = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    for command in ("ruff check", "ruff format --check", "mypy", "actionlint"):
        assert command in lint
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_strict_typing_and_complexity_are_configured() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert "strict = true" in text and "max-complexity = 10" in text and '"C90"' in text
    assert re.search(r'requires-python = ">=3\.11"\n', text)  # no upper cap


def test_workflow_passes_actionlint() -> None:
    binary = shutil.which("actionlint") or str(ROOT / ".venv/bin/actionlint")
    proc = subprocess.run(
        [binary, str(ROOT / ".github/workflows/ci.yml")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())["jobs"]["fast"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "make lint" in runs and "make test-fast" in runs and "stack compose --check" in runs


def test_pre_commit_runs_the_same_checks() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    ids = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff-check", "ruff-format", "mypy", "actionlint", "compose-check"} <= ids
