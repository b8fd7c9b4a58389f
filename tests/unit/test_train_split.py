"""train reads only the columns it uses, and samples in Arrow (a row group at a time) the rows
pandas would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import TrainParams
from flightdelay.core.errors import UserError
from flightdelay.pipeline.train import read_split


def params(**extra: object) -> TrainParams:
    base = {"target": "y", "categorical": ["c"], "numeric": ["x"], "random_state": 7}
    base |= {
        "decision_threshold": 0.5,
        "variants": {"ridge": {"penalty": "l2", "C": 1.0, "solver": "lbfgs", "max_iter": 100}},
    }
    return TrainParams.model_validate(base | extra)


@pytest.fixture(params=[None, 613], ids=["one-row-group", "row-groups-of-613"])
def split(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame(
        {
            "c": rng.choice(["a", "b", None], n),
            "x": rng.normal(size=n),
            "unused": rng.normal(size=n),
            "y": rng.integers(0, 2, n),
        }
    )
    frame.to_parquet(tmp_path / "train.parquet", index=False, row_group_size=request.param)
    return tmp_path / "train.parquet"


def test_the_sample_is_pandas_sample_of_the_used_columns(split: Path) -> None:
    tp = params()
    expected = pd.read_parquet(split).sample(700, random_state=7)[["c", "x", "y"]]
    got = read_split(split, tp, 700)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))
    pd.testing.assert_frame_equal(read_split(split, tp), pd.read_parquet(split)[["c", "x", "y"]])
    assert len(read_split(split, tp, 10**9)) == 5000  # more than there are: all of them


def test_a_missing_column_is_one_line_naming_it(split: Path) -> None:
    with pytest.raises(UserError, match="not in the feature table: nope"):
        read_split(split, params(numeric=["x", "nope"]))
