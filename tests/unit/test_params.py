"""params.yaml validation: a bad or missing key is one clear line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from flightdelay.core.config import load_params, mask_url, parse_params
from flightdelay.core.errors import UserError
from tests.conftest import ROOT


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_repo_params_are_valid(raw: dict) -> None:
    params = parse_params(raw)
    assert {"lasso", "ridge"} <= set(params.train.variants)
    assert params.train.variants["lasso"].penalty == "l1"
    assert params.train.variants["ridge"].penalty == "l2"
    assert params.features.sql_params["threshold_minutes"] == 15
    assert params.features.sql_params["cancelled_as_delayed"] is True
    assert params.features.split.strategy == "time"
    assert params.train.positive == 1 and params.train.drop_null_target is False
    assert params.get_data.source == "package" and params.get_data.tables
    assert "month" not in params.train.numeric  # pure extrapolation under a Jan-Oct/Nov-Dec split


def test_missing_key_names_it(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    del bad["train"]["variants"]["ridge"]["C"]
    with pytest.raises(UserError) as err:
        parse_params(bad)
    msg = str(err.value)
    assert "train.variants.ridge.C" in msg and "\n" not in msg


def test_mistyped_key_names_it(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["train"]["variants"]["lasso"]["max_iter"] = "lots"
    with pytest.raises(UserError, match=r"train\.variants\.lasso\.max_iter"):
        parse_params(bad)


def test_unknown_key_is_rejected(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["features"]["split"]["cutof"] = "2013-11-01"
    with pytest.raises(UserError, match=r"features\.split\.time\.cutof"):
        parse_params(bad)


def test_removed_label_section_is_rejected(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["label"] = {"threshold_minutes": 15, "cancelled_as_delayed": True}
    with pytest.raises(UserError, match=r"invalid parameter label: Extra inputs"):
        parse_params(bad)


def test_unknown_split_strategy_names_the_key(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["features"]["split"] = {"strategy": "kfold", "folds": 5}
    with pytest.raises(UserError) as err:
        parse_params(bad)
    msg = str(err.value)
    assert "features.split" in msg and "'kfold'" in msg and "stratified" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "split",
    [
        {"strategy": "column", "column": "month", "train": [1, 2], "test": [3]},
        {"strategy": "time", "column": "time_hour", "cutoff": "2013-11-01"},
        {"strategy": "random", "test_fraction": 0.2, "seed": 42},
        {"strategy": "stratified", "test_fraction": 0.2},
        {"strategy": "group", "column": "tailnum", "test_fraction": 0.25, "seed": 1},
    ],
)
def test_every_split_strategy_parses(raw: dict, split: dict) -> None:
    good = copy.deepcopy(raw)
    good["features"]["split"] = split
    assert parse_params(good).features.split.strategy == split["strategy"]


def test_test_fraction_must_be_a_fraction(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["features"]["split"] = {"strategy": "random", "test_fraction": 1.5}
    with pytest.raises(UserError, match=r"features\.split\.random\.test_fraction"):
        parse_params(bad)


def test_files_source(raw: dict) -> None:
    good = copy.deepcopy(raw)
    good["get_data"] = {
        "source": "files",
        "files": {"customers": {"path": "data/external/customers.csv", "rows": 3}},
    }
    spec = parse_params(good).get_data.files["customers"]  # type: ignore[index]
    assert spec.rows == 3 and spec.sha256 is None
    good["get_data"]["files"]["customers"]["sha256"] = "abc"
    with pytest.raises(UserError, match=r"get_data\.files\.customers\.sha256"):
        parse_params(good)


def test_source_needs_its_keys(raw: dict) -> None:
    bad = copy.deepcopy(raw)
    bad["get_data"]["source"] = "files"
    with pytest.raises(UserError, match=r"get_data: .*source: files needs `files`"):
        parse_params(bad)


@pytest.mark.parametrize("positive", ["Yes", 2, True, [1, 2], 0.5])
def test_positive_takes_any_scalar_or_list(raw: dict, positive: object) -> None:
    good = copy.deepcopy(raw)
    good["train"]["positive"] = positive
    assert parse_params(good).train.positive == positive


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
    broken = tmp_path / "p.yaml"
    broken.write_text("train: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_params(broken)


def test_password_is_masked() -> None:
    assert mask_url("postgresql+psycopg2://u:s3cret@h:5/db") == "postgresql+psycopg2://u:***@h:5/db"
    assert mask_url("sqlite:///data/x.db") == "sqlite:///data/x.db"
