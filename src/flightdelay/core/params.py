"""params.yaml: the experiment knobs, one section per stage, validated into small models.

:func:`load_params` reads and validates the file (a bad or missing key is one UserError line
naming it); nothing is read at import time.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from flightdelay.core.errors import UserError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TableSpec(_Strict):  # a table shipped in the package: rows and sha256 of its file
    rows: int = Field(gt=0)
    sha256: str


class FileSpec(_Strict):  # a user file under data/external/; sha256 and rows checked if given
    path: Path
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    rows: int | None = Field(default=None, ge=0)


class GetDataParams(_Strict):  # source: package (package + tables) or source: files (files)
    source: Literal["package", "files"] = "package"
    package: str | None = None
    tables: dict[str, TableSpec] | None = None
    files: dict[str, FileSpec] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> GetDataParams:
        if self.source == "package" and (not self.package or not self.tables or self.files):
            raise ValueError("source: package needs `package` and `tables` (and no `files`)")
        if self.source == "files" and (not self.files or self.package or self.tables):
            raise ValueError("source: files needs `files` (and no `package`/`tables`)")
        return self


class LoadParams(_Strict):
    progress_min_rows: int = Field(ge=0)
    chunk_rows: int = Field(gt=0)


class ColumnSplit(_Strict):  # rows whose `column` is in `train` / `test` (others left out)
    strategy: Literal["column"]
    column: str
    train: list[int | str] = Field(min_length=1)
    test: list[int | str] = Field(min_length=1)


class TimeSplit(_Strict):  # rows with `column` before `cutoff` (a date/time or number) train
    strategy: Literal["time"]
    column: str
    cutoff: str | float


class RandomSplit(_Strict):  # random rows (stratified: the same fraction of each class) test
    strategy: Literal["random", "stratified"]
    test_fraction: float = Field(gt=0, lt=1)
    seed: int = 42


class GroupSplit(_Strict):  # whole groups of `column` go to one side
    strategy: Literal["group"]
    column: str
    test_fraction: float = Field(gt=0, lt=1)
    seed: int = 42


SplitParams = Annotated[
    ColumnSplit | TimeSplit | RandomSplit | GroupSplit, Field(discriminator="strategy")
]
Scalar = StrictBool | int | float | str


class FeaturesParams(_Strict):
    table: str
    key: list[str] = Field(default_factory=list)  # optional row key (orders the rows)
    sql_params: dict[str, Scalar | None] = Field(default_factory=dict)  # features.sql binds
    split: SplitParams

    @field_validator("table")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _IDENT.match(value):
            raise ValueError("must be a plain SQL identifier")
        return value


class VariantParams(_Strict):
    penalty: Literal["l1", "l2", "elasticnet", None]
    C: float = Field(gt=0)
    solver: Literal["lbfgs", "liblinear", "newton-cg", "newton-cholesky", "sag", "saga"]
    max_iter: int = Field(gt=0)
    tol: float = Field(default=1e-4, gt=0)
    class_weight: Literal["balanced"] | None = None
    l1_ratio: float | None = None


class TrainParams(_Strict):
    target: str
    positive: Scalar | list[Scalar] | None = None  # the positive class value(s); None: 1 / true
    drop_null_target: bool = False
    categorical: list[str]
    numeric: list[str]
    decision_threshold: float = Field(gt=0, lt=1)
    sample_rows: int | None = Field(default=None, gt=0)
    random_state: int
    variants: dict[str, VariantParams] = Field(min_length=1)


class MlflowParams(_Strict):
    experiment: str


class RegisterParams(_Strict):
    model_name: str
    metric: str
    greater_is_better: bool
    min_value: float  # the quality gate: no version is registered when the best misses it
    # A candidate replaces @champion only when it beats it on the same test data by this much
    # (absolute, in the metric's units, in the direction of greater_is_better).
    min_improvement: float = Field(default=0.0, ge=0)


ScoreEngine = Literal["pandas", "spark-udf", "spark-sql"]


class ScoreParams(_Strict):
    """Stage score (`make score`): how the model at `@serving` scores the feature table."""

    engine: ScoreEngine = "pandas"
    # rows per pandas batch / Spark Arrow batch / chunk written to the `predictions` table
    batch_rows: int = Field(default=100_000, gt=0)
    verify_rows: int = Field(default=2_000, gt=0)  # rows the spark-sql expression is checked on
    spark_partitions: int | None = Field(default=None, gt=0)  # null: one task per row group


class Params(_Strict):
    get_data: GetDataParams
    load: LoadParams
    features: FeaturesParams
    train: TrainParams
    mlflow: MlflowParams
    # `register` would shadow ABCMeta.register on the model class.
    registry: RegisterParams = Field(alias="register")
    score: ScoreParams = Field(default_factory=ScoreParams)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    return f"{key}: {err['msg']}"


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate a params mapping; a bad or missing key raises UserError naming the key."""
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"{source}: invalid parameter {_first_error(exc)}") from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text())
    except FileNotFoundError:
        raise UserError(f"{p}: file not found (run from the project root)") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not valid YAML ({exc.__class__.__name__})") from None
    return parse_params(raw, str(p))
