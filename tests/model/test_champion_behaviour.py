"""Behavioural checks on the champion the real pipeline registered."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flightdelay.core.config import PipelineSettings, load_params
from flightdelay.core.tracking import Tracking

pytestmark = pytest.mark.slow


class Champion:
    """The registered champion as every MLflow consumer sees it: a pyfunc on raw rows."""

    def __init__(self, model: object) -> None:
        self.model = model

    def optional_columns(self) -> set[str]:
        schema = self.model.metadata.get_input_schema()  # type: ignore[attr-defined]
        return {c.name for c in schema.inputs if not c.required}

    def proba(self, rows: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict(rows), dtype=float)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def champion(reproduced_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Champion:
    settings = PipelineSettings(
        mlflow_tracking_uri=f"sqlite:///{reproduced_repo / 'mlflow.db'}",
        mlflow_artifact_root=str(reproduced_repo / "mlruns"),
    )
    tracking = Tracking(settings)
    version = tracking.client.get_model_version_by_alias("flightdelay", "champion").version
    return Champion(tracking.load_pyfunc("flightdelay", str(version), tmp_path_factory.mktemp("m")))


@pytest.fixture(scope="module")
def test_rows(reproduced_repo: Path) -> pd.DataFrame:
    return pd.read_parquet(reproduced_repo / "data/processed/test.parquet")


def test_late_evening_departures_riskier_than_early_morning(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    base = test_rows.head(200).copy()
    early, late = base.copy(), base.copy()
    early["dep_hour"], early["dep_hour_bucket"], early["sched_dep_minutes"] = 6, "morning", 360
    late["dep_hour"], late["dep_hour_bucket"], late["sched_dep_minutes"] = 20, "evening", 1200
    p_early = champion.proba(early).mean()
    p_late = champion.proba(late).mean()
    assert p_late > p_early + 0.05


def test_unknown_categories_and_missing_numbers_still_score(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    rows = test_rows.head(50).copy()
    rows["carrier"], rows["dest"] = "ZZ", "NOPE"
    # every numeric the signature allows to be missing (the data has nulls there)
    nullable = champion.optional_columns() & set(load_params().train.numeric)
    assert {"temp", "plane_year", "wind_gust"} <= nullable
    for col in nullable:
        rows[col] = np.nan
    proba = champion.proba(rows)
    assert np.isfinite(proba).all() and ((proba > 0) & (proba < 1)).all()
    # an unseen category carries no weight: any other unseen value answers the same
    other = rows.copy()
    other["carrier"], other["dest"] = "QQ", "ELSEWHERE"
    np.testing.assert_array_equal(champion.proba(other), proba)
    # and a missing number is imputed: it answers like the imputed value, not like 0
    zeros = rows.copy()
    for col in nullable:
        zeros[col] = 0.0
    assert np.abs(champion.proba(zeros) - proba).max() > 1e-6


def test_probabilities_track_the_observed_rate(champion, test_rows) -> None:  # type: ignore[no-untyped-def]
    proba = champion.proba(test_rows)
    target = load_params().train.target
    by_month = pd.DataFrame({"p": proba, "y": test_rows[target]}).groupby(test_rows["month"]).mean()
    # class_weight="balanced" shifts the level; the ordering of months must still follow the data
    assert (by_month["p"].rank() == by_month["y"].rank()).all()
