"""params.yaml `score:`, the knobs of stage score, and reading params.yaml with it.

:class:`ScoreParams` is meant to move into :mod:`flightdelay.core.config` as the `score` field
of `Params`. Until then :func:`read_params` takes the `score:` section off before the rest is
validated (`Params` forbids unknown sections), so the stage works either way. It lives here, not
in core/, because every stage's DVC deps include src/flightdelay/core: a new file there would
change the dvc.lock entry of every other stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flightdelay.core.config import Params, parse_params
from flightdelay.core.errors import UserError

ScoreEngine = Literal["pandas", "spark-udf", "spark-sql"]


class ScoreParams(BaseModel):
    """How the stage scores the feature table with the model at `@serving`."""

    model_config = ConfigDict(extra="forbid")

    engine: ScoreEngine = "pandas"
    # Rows per pandas batch (the tqdm unit), per Arrow batch sent to a Spark Python worker,
    # and per chunk written to the `predictions` table.
    batch_rows: int = Field(default=100_000, gt=0)
    # Rows of the data the spark-sql expression is checked on against the pyfunc (each is also
    # probed with unseen categories and, where the signature allows, missing values).
    verify_rows: int = Field(default=2_000, gt=0)
    # Spark: spread each split over this many tasks before scoring (null: one task per parquet
    # row group, as read). More tasks than cores only adds shuffle cost.
    spark_partitions: int | None = Field(default=None, gt=0)


def read_params(path: Path) -> tuple[Params, ScoreParams]:
    """params.yaml validated, with its `score:` section (defaults when absent)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: file not found (run from the project root)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    section = raw.pop("score", None) if isinstance(raw, dict) else None
    try:
        score = ScoreParams.model_validate(section or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in ("score", *err["loc"]))
        raise UserError(f"{path}: invalid parameter {key}: {err['msg']}") from None
    return parse_params(raw, str(path)), score
