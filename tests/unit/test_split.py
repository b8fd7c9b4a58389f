"""Splits: every strategy, deterministic whatever order the database returns rows in."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import yaml

from flightdelay.core.config import Params, parse_params
from flightdelay.core.errors import UserError
from flightdelay.pipeline.splits import canonical_frame, canonical_order, make_splits
from tests.conftest import ROOT


def params(split: dict, key: list[str] | None = None, **train: object) -> Params:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    raw["features"]["split"] = split
    raw["features"]["key"] = key or []
    raw["train"].update({"target": "y", "positive": "yes", **train})
    return parse_params(raw)


def frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "school": [f"s{i % 9}" for i in range(n)],
            "month": [1 + i % 12 for i in range(n)],
            "x": rng.normal(size=n).round(6),
            "y": ["yes" if i % 4 == 0 else "no" for i in range(n)],
            "at": pd.date_range("2013-01-01", periods=n, freq="D", tz="UTC"),
        }
    )


SPLITS = [
    {"strategy": "column", "column": "month", "train": [1, 2, 3, 4, 5, 6, 7, 8], "test": [9, 10]},
    {"strategy": "time", "column": "at", "cutoff": "2013-05-01"},
    {"strategy": "random", "test_fraction": 0.25, "seed": 7},
    {"strategy": "stratified", "test_fraction": 0.25, "seed": 7},
    {"strategy": "group", "column": "school", "test_fraction": 0.3, "seed": 7},
]


@pytest.mark.parametrize("split", SPLITS, ids=[s["strategy"] for s in SPLITS])
@pytest.mark.parametrize("key", [["id"], []], ids=["key", "content-hash"])
def test_same_split_whatever_the_row_order(split: dict, key: list[str]) -> None:
    p = params(split, key)
    train, test = make_splits(frame(), p)
    shuffled = frame().sample(frac=1.0, random_state=3).reset_index(drop=True)
    train2, test2 = make_splits(shuffled, p)
    pd.testing.assert_frame_equal(train, train2)
    pd.testing.assert_frame_equal(test, test2)
    assert set(train["id"]).isdisjoint(test["id"]) and len(train) and len(test)


def test_column_and_time_semantics() -> None:
    train, test = make_splits(frame(), params(SPLITS[0]))
    assert set(train["month"]) == set(range(1, 9)) and set(test["month"]) == {9, 10}
    train, test = make_splits(frame(), params(SPLITS[1]))
    assert train["at"].max() < pd.Timestamp("2013-05-01", tz="UTC") <= test["at"].min()
    cut = {"strategy": "time", "column": "at", "cutoff": "2013-05-01T00:00:00-04:00"}
    train, _ = make_splits(frame(), params(cut))
    assert train["at"].max() == pd.Timestamp("2013-05-01", tz="UTC")  # 04:00 UTC cutoff
    by_number = {"strategy": "time", "column": "month", "cutoff": 7}
    train, test = make_splits(frame(), params(by_number))
    assert train["month"].max() == 6 and test["month"].min() == 7


def test_fractions_seed_and_strata() -> None:
    f = frame(400)
    _, test = make_splits(f, params(SPLITS[2]))
    assert len(test) == 100
    _, other = make_splits(f, params({**SPLITS[2], "seed": 8}))
    assert set(other["id"]) != set(test["id"])
    _, strat = make_splits(f, params(SPLITS[3]))
    assert (strat["y"] == "yes").sum() == 25 and (strat["y"] == "no").sum() == 75


def test_groups_never_straddle() -> None:
    train, test = make_splits(frame(), params(SPLITS[4]))
    assert set(train["school"]).isdisjoint(test["school"])
    assert 0.15 < len(test) / 200 < 0.45


def test_one_class_side_is_named() -> None:
    f = frame().assign(y=lambda d: np.where(d["month"] >= 9, "yes", "no"))
    with pytest.raises(UserError) as err:
        make_splits(f, params(SPLITS[0]))
    msg = str(err.value)
    assert "features.split (column): the train side has no positive rows" in msg
    assert "train.positive 'yes'" in msg and "\n" not in msg
    f2 = frame().assign(y=lambda d: np.where((d["month"] >= 9) | (d["id"] % 3 == 0), "yes", "no"))
    with pytest.raises(UserError, match="the test side has no negative rows"):
        make_splits(f2, params(SPLITS[0]))


def test_empty_side_and_overlap() -> None:
    late = {"strategy": "time", "column": "at", "cutoff": "2030-01-01"}
    with pytest.raises(UserError, match=r"features.split \(time\): the test side is empty"):
        make_splits(frame(), params(late))
    both = {"strategy": "column", "column": "month", "train": [1, 2], "test": [2, 3]}
    with pytest.raises(UserError, match=r"features.split: \[2\] in train and test"):
        make_splits(frame(), params(both))
    with pytest.raises(UserError, match="is not a date/time"):
        make_splits(frame(), params({"strategy": "time", "column": "at", "cutoff": "soon"}))
    with pytest.raises(UserError, match="'school' is neither a time nor a number"):
        make_splits(frame(), params({"strategy": "time", "column": "school", "cutoff": "s3"}))
    with pytest.raises(UserError, match="cutoff: 'soon' is not a number like 'month'"):
        make_splits(frame(), params({"strategy": "time", "column": "month", "cutoff": "soon"}))


def test_null_targets_are_counted_or_dropped() -> None:
    f = frame().assign(y=lambda d: d["y"].where(d["id"] % 50 != 1))
    with pytest.raises(UserError, match=r"4 row\(s\) have a NULL target"):
        make_splits(f, params(SPLITS[2]))
    train, test = make_splits(f, params(SPLITS[2], drop_null_target=True))
    assert len(train) + len(test) == 196


def test_positive_not_in_target() -> None:
    with pytest.raises(UserError, match=r"train.positive: 'Yes' is not a value of train.target"):
        make_splits(frame(), params(SPLITS[2], positive="Yes"))


def test_duplicate_key_is_an_error() -> None:
    with pytest.raises(UserError, match=r"features.key \['school'\]: 191 row\(s\) repeat"):
        make_splits(frame(), params(SPLITS[2], key=["school"]))


def test_canonical_types_match_across_engines() -> None:
    """SQLite gives ISO text and 0/1; PostgreSQL timestamptz and booleans: one result."""
    sqlite = pd.DataFrame({"t": ["2013-01-01 10:00:00+00:00", None], "b": [1, 0], "n": [1.5, None]})
    pg = pd.DataFrame(
        {
            "t": pd.to_datetime(["2013-01-01 05:00:00-05:00", None], utc=True),
            "b": [True, False],
            "n": [1.5, None],
        }
    )
    a, b = canonical_frame(sqlite), canonical_frame(pg)
    pd.testing.assert_frame_equal(a, b)
    assert str(a["t"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(canonical_order(a, []), canonical_order(b.iloc[::-1], []))
