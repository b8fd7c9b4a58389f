"""dvc.yaml: every stage depends on every project module its code imports (transitively), so
an edit anywhere a stage's code reaches re-runs that stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file of project module `name` (a package's __init__), None outside the project."""
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> set[Path]:
    """Project modules `path` imports, at module level or inside functions."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.startswith("flightdelay") and (file := module_file(name)) is not None:
                found.add(file)
    return found


def reach(start: set[Path]) -> set[Path]:
    seen, todo = set(), list(start)
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imports(path))
    return seen


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_what_its_code_imports(stage: str) -> None:
    deps = [ROOT / d for d in STAGES[stage].get("deps", []) if str(d).startswith("src/")]
    modules = {d for d in deps if d.suffix == ".py"}
    missing = sorted(
        str(p.relative_to(ROOT))
        for p in reach(modules)
        if not any(p == d or d in p.parents for d in deps) and p.name != "__init__.py"
    )
    assert not missing, f"dvc.yaml stage {stage}: add to deps: {missing}"
