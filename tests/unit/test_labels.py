"""The label mapping: any target dtype to 0/1 by `train.positive`; clear errors otherwise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.errors import UserError
from flightdelay.core.labels import drop_null_target, to_binary


@pytest.mark.parametrize(
    ("values", "positive", "expected"),
    [
        ([0, 1, 1, 0], None, [0, 1, 1, 0]),  # default: 1 / true
        ([0.0, 1.0], None, [0, 1]),
        ([True, False], None, [1, 0]),
        (["true", "false"], None, [1, 0]),
        (["0", "1"], 1, [0, 1]),  # text digits match a numeric positive
        (["No", "Yes", "Yes"], "Yes", [0, 1, 1]),
        ([1, 2, 2], 2, [0, 1, 1]),  # 1/2 codes
        ([1, 2, 3], [2, 3], [0, 1, 1]),  # several positive values
        (["malignant", "benign"], "malignant", [1, 0]),
    ],
)
def test_maps_any_dtype(values: list[object], positive: object, expected: list[int]) -> None:
    out = to_binary(pd.Series(values), positive)  # type: ignore[arg-type]
    assert out.dtype == np.int64
    assert out.tolist() == expected


def test_text_is_compared_exactly() -> None:
    with pytest.raises(UserError, match=r"train\.positive: 'yes' is not a value"):
        to_binary(pd.Series(["No", "Yes"]), "yes", target="default")


def test_positive_not_among_values_names_the_key_and_values() -> None:
    with pytest.raises(UserError) as err:
        to_binary(pd.Series(["No", "Yes"]), None, target="default")
    msg = str(err.value)
    assert msg.startswith("train.positive: ") and "'default'" in msg
    assert "'No', 'Yes'" in msg and "\n" not in msg


def test_one_class_is_an_error() -> None:
    with pytest.raises(UserError, match=r"every value of train.target 'y' is positive"):
        to_binary(pd.Series([1, 1, 1]), 1, target="y")
    assert to_binary(pd.Series([1, 1]), 1, require_both=False).tolist() == [1, 1]


def test_null_target_gives_the_count() -> None:
    with pytest.raises(UserError, match=r"train.target 'y': 2 row\(s\) have a NULL target"):
        to_binary(pd.Series([1, None, 0, None]), 1, target="y")


def test_drop_null_target() -> None:
    frame = pd.DataFrame({"y": ["a", None, "b"], "x": [1, 2, 3]})
    kept, dropped = drop_null_target(frame, "y", drop=True)
    assert dropped == 1 and kept["x"].tolist() == [1, 3]
    with pytest.raises(UserError, match=r"1 row\(s\) have a NULL target.*drop_null_target: true"):
        drop_null_target(frame, "y", drop=False)
    same, none = drop_null_target(frame.dropna(), "y", drop=False)
    assert none == 0 and len(same) == 2
