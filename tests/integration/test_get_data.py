"""get_data: the pinned tables, verified; a mismatch is one line and writes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from flightdelay.core.config import load_params
from flightdelay.core.errors import UserError
from flightdelay.pipeline.get_data import materialize
from tests.conftest import ROOT, venv_env


def test_small_tables_match_recorded_counts(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    small = gd.model_copy(update={"tables": {k: v for k, v in gd.tables.items() if k != "flights"}})
    counts = materialize(small, tmp_path)
    assert counts == {"airlines": 16, "airports": 1458, "planes": 3322, "weather": 26115}
    assert len(pd.read_parquet(tmp_path / "weather.parquet")) == 26115


def test_hash_mismatch_writes_nothing(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    tables = dict(gd.tables)
    tables["planes"] = tables["planes"].model_copy(update={"sha256": "0" * 64})
    with pytest.raises(UserError, match=r"planes: content hash .* does not match params.yaml"):
        materialize(gd.model_copy(update={"tables": tables}), tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


def test_row_count_mismatch_is_clear(tmp_path: Path) -> None:
    gd = load_params(ROOT / "params.yaml").get_data
    tables = {"airlines": gd.tables["airlines"].model_copy(update={"rows": 17})}
    with pytest.raises(UserError, match=r"airlines: 16 rows, params.yaml .* says 17"):
        materialize(gd.model_copy(update={"tables": tables}), tmp_path)


def test_cli_error_is_one_line_and_nonzero(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(
        (ROOT / "params.yaml").read_text().replace("C: 1.0", "C: -1")
    )
    proc = subprocess.run(
        ["flightdelay", "train", "ridge", "--data-dir", "d", "--metrics-dir", "m"]
        + ["--plots-dir", "p", "--runs-dir", "r"],
        cwd=tmp_path,
        env=venv_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0, proc.stderr
    assert "train.variants.ridge.C" in proc.stderr and "Traceback" not in proc.stderr
