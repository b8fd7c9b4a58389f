"""Behavioural checks on the champion the real pipeline registered."""

from __future__ import annotations

from pathlib import Path

import mlflow.sklearn
import pandas as pd
import pytest

from flightdelay.core.config import load_params
from flightdelay.core.estimator import coerce_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def champion(reproduced_repo: Path):  # type: ignore[no-untyped-def]
    uri = f"sqlite:///{reproduced_repo / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)  # other tests may have pointed the registry elsewhere
    return mlflow.sklearn.load_model("models:/flightdelay@champion")


@pytest.fixture(scope="module")
def test_rows(reproduced_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(reproduced_repo / "data/processed/test.parquet")


def frame(rows: pd.DataFrame) -> pd.DataFrame:
    tp = load_params().train
    return coerce_frame(rows, tp.categorical, tp.numeric)


def test_late_evening_departures_riskier_than_early_morning(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    base = test_rows.head(200).copy()
    early, late = base.copy(), base.copy()
    early["dep_hour"], early["dep_hour_bucket"], early["sched_dep_minutes"] = 6, "morning", 360
    late["dep_hour"], late["dep_hour_bucket"], late["sched_dep_minutes"] = 20, "evening", 1200
    p_early = champion.predict_proba(frame(early))[:, 1].mean()
    p_late = champion.predict_proba(frame(late))[:, 1].mean()
    assert p_late > p_early + 0.05


def test_unknown_categories_and_missing_numbers_still_score(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    rows = test_rows.head(50).copy()
    rows["carrier"], rows["dest"] = "ZZ", "NOPE"
    for col in load_params().train.numeric:
        rows[col] = None
    proba = champion.predict_proba(frame(rows))[:, 1]
    assert ((proba > 0) & (proba < 1)).all()


def test_probabilities_track_the_observed_rate(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    proba = champion.predict_proba(frame(test_rows))[:, 1]
    target = load_params().train.target
    by_month = pd.DataFrame({"p": proba, "y": test_rows[target]}).groupby(test_rows["month"]).mean()
    # class_weight="balanced" shifts the level; the ordering of months must still follow the data
    assert (by_month["p"].rank() == by_month["y"].rank()).all()
