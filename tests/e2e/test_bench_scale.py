"""`make bench-scale` at x1 (the `--sizes` flag), pandas only: every stage measured, bounded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, venv_env

pytestmark = pytest.mark.slow


def test_x1_measures_every_stage_within_its_budget(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_scale.py"), "--sizes", "1"]
    cmd += ["--no-spark", "--max-minutes", "12", "--train-sample-rows", "50000"]
    done = subprocess.run(
        [*cmd, "--out", str(out)], cwd=ROOT, env=venv_env(), capture_output=True, timeout=900
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    report = json.loads(out.read_text())
    assert report["data"].startswith("SYNTHETIC")
    x1 = report["results"]["1"]
    assert x1["rows"] == 336_776
    for stage in ("load", "load_postgres", "features", "train", "train_all_rows"):
        assert x1[stage]["wall_s"] > 0 and x1[stage]["peak_rss_mb"] > 0, stage
        assert x1[stage]["us_per_row"] > 0, stage
    fixed = report["fixed_cost_s"]
    assert 900 < fixed["rows"] < 1100, fixed
    for stage in ("load", "load_postgres", "features"):
        assert 0 < fixed[stage] < x1[stage]["wall_s"], (stage, fixed)
        assert 0 < x1[stage]["us_per_row_after_fixed_cost"] < x1[stage]["us_per_row"], stage
    assert x1["features"]["peak_rss_mb"] < 2048  # streamed
    ratio = x1["load_postgres_vs_psql_copy"]
    assert ratio["ours_s"] > 0 and ratio["psql_copy_s"] > 0 and ratio["ratio"] > 0
    assert x1["score"]["pandas"]["engine_ran"] == "pandas"
    assert x1["score"]["pandas"]["rows_per_s"] > 0
    assert report["bench_minutes"] <= 12 + 1


def test_bad_sizes_is_one_line() -> None:
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_scale.py"), "--sizes", "1,x"]
    done = subprocess.run(cmd, cwd=ROOT, env=venv_env(), capture_output=True, text=True)
    assert done.returncode == 2
    assert "--sizes: '1,x' is not a comma-separated list of integers" in done.stderr
    assert "Traceback" not in done.stderr
