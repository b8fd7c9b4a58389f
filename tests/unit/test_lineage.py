"""Deterministic lineage: hashes that do not depend on where the clone lives."""

from __future__ import annotations

import shutil
from pathlib import Path

from flightdelay.core import lineage
from flightdelay.core.evaluation import round_sig


def test_tree_md5_is_independent_of_the_clone_path_and_ignores_caches(tmp_path: Path) -> None:
    a = tmp_path / "a" / "pkg"
    (a / "core" / "__pycache__").mkdir(parents=True)
    (a / "core" / "x.py").write_text("x = 1\n")
    (a / "core" / "q.sql").write_text("SELECT 1\n")
    b = tmp_path / "elsewhere" / "deeper" / "pkg"
    shutil.copytree(a, b)
    (b / "core" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0junk")
    assert lineage.tree_md5([a / "core"], a) == lineage.tree_md5([b / "core"], b)
    (b / "core" / "q.sql").write_text("SELECT 2\n")
    assert lineage.tree_md5([a / "core"], a) != lineage.tree_md5([b / "core"], b)


def test_stable_hash_ignores_key_order() -> None:
    assert lineage.stable_hash({"a": 1, "b": [1, 2]}) == lineage.stable_hash({"b": [1, 2], "a": 1})
    assert lineage.stable_hash({"a": 1}) != lineage.stable_hash({"a": 2})


def test_dvc_experiment_is_read_from_dvc_exp_run_variables() -> None:
    assert lineage.dvc_experiment({}) == {}
    assert not lineage.in_dvc_experiment({"DVC_EXP_NAME": "x"})
    env = {"DVC_EXP_BASELINE_REV": "abc", "DVC_EXP_NAME": "brave-cat"}
    assert lineage.dvc_experiment(env) == {"dvc.exp.baseline": "abc", "dvc.exp.name": "brave-cat"}
    assert lineage.in_dvc_experiment(env)


def test_round_sig_keeps_six_significant_digits() -> None:
    assert round_sig(0.123456789) == 0.123457
    assert round_sig(1234567.0) == 1234570.0
    assert round_sig(0.0) == 0.0
    assert round_sig(-0.000123456789) == -0.000123457
