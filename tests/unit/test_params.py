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
    assert params.label.threshold_minutes == 15


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
    bad["label"]["threshhold_minutes"] = 10
    with pytest.raises(UserError, match=r"label\.threshhold_minutes"):
        parse_params(bad)


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
