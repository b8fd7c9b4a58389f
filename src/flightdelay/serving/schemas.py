"""Request and response schemas. The request models are built per loaded model from its MLflow
signature: one field per input column, `str` for categoricals, `float | None` for numerics
(the pipeline imputes them); unknown fields are rejected."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

NUMERIC_TYPES = {"double", "float", "long", "integer"}


@dataclass(frozen=True)
class RequestSchemas:
    """Validators for the three accepted bodies: one record, a list, or columns."""

    record: type[BaseModel]
    columns: type[BaseModel]
    one: TypeAdapter[Any]
    many: TypeAdapter[Any]
    cols: TypeAdapter[Any]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every input column: categoricals, then numerics."""
        return (*self.categorical, *self.numeric)


def build_request_schemas(
    inputs: list[tuple[str, str]],
    nullable_categorical: set[str],
    max_batch: int,
    example: dict[str, Any] | None,
) -> RequestSchemas:
    """Schemas for a model whose signature inputs are (name, MLflow type) pairs."""
    record_fields: dict[str, Any] = {}
    column_fields: dict[str, Any] = {}
    categorical, numeric = [], []
    for name, mtype in inputs:
        if mtype in NUMERIC_TYPES:
            typ: Any = float | None
            numeric.append(name)
        elif mtype == "string":
            typ = str | None if name in nullable_categorical else str
            categorical.append(name)
        else:
            raise ValueError(f"signature column {name!r} has unsupported type {mtype!r}")
        record_fields[name] = (typ, Field(...))
        column_fields[name] = (list[typ], Field(..., min_length=1, max_length=max_batch))
    config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [example]} if example else None
    )
    record = create_model("FlightRecord", __config__=config, **record_fields)
    col_example = {"columns": {k: [v] for k, v in example.items()}} if example else None
    columns_inner = create_model(
        "FlightColumnsData", __config__=ConfigDict(extra="forbid"), **column_fields
    )
    columns = create_model(
        "FlightColumns",
        __config__=ConfigDict(
            extra="forbid",
            json_schema_extra=cast(Any, {"examples": [col_example]} if col_example else None),
        ),
        columns=(columns_inner, Field(...)),
    )
    many_type = Annotated[list[record], Field(min_length=1, max_length=max_batch)]  # type: ignore[valid-type]
    return RequestSchemas(
        record=record,
        columns=columns,
        one=TypeAdapter(record),
        many=TypeAdapter(many_type),
        cols=TypeAdapter(columns),
        categorical=tuple(categorical),
        numeric=tuple(numeric),
    )


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: int
    alias: str | None


class Prediction(BaseModel):
    """One record's answer."""

    probability: float = Field(description="Probability that the flight arrives >= 15 min late")
    delayed: bool = Field(description="probability >= the model's decision threshold")


class PredictResponse(BaseModel):
    """The answer to POST /predict (record or list form)."""

    model: ModelRef
    threshold: float
    predictions: list[Prediction]
    warnings: list[str] = []


MAX_VERSION = 2**31 - 1  # the registry stores versions as 32-bit integers


class ModelAssign(BaseModel):
    """POST /model: serve another alias or version fleet-wide (exactly one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"alias": "challenger"}, {"version": 1, "reason": "incident 42"}]
        },
    )
    alias: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
    )
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: str | None = Field(default=None, max_length=500, description="why (audited)")


class ModelInfo(BaseModel):
    """What GET /model reports about the model in memory."""

    name: str
    version: int
    alias: str | None
    run_id: str
    scorer: str
    scorer_fallback_reason: str | None
    decision_threshold: float
    created_at: str
    loaded_at: str
    git_sha: str | None
    data_hashes: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    inputs: dict[str, str]
    lineage: dict[str, str] = {}  # fingerprint, git.sha / git.changed, dvc.* of the version
    decision: dict[str, str] = {}  # the registry's decision.* and champion.* tags
    description: str = ""  # the version's model card (markdown)
    pin: dict[str, Any] | None = None  # the registry's serving pin (version, reason, at, by)


class Fleet(BaseModel):
    """When every replica is expected to serve the assigned version."""

    alias: str
    version: int
    follow_seconds: float | None  # API_POLL_SECONDS; None when replicas follow only on restart
    expected_by: str | None  # ISO 8601 UTC
    note: str


class ModelAssigned(ModelInfo):
    """The answer to POST /model and /model/reload: the model now served here, and the fleet."""

    fleet: Fleet


class Problem(BaseModel):
    """Every error answer: one line naming what is wrong, and extras where useful."""

    model_config = ConfigDict(extra="allow")
    detail: str
    errors: list[dict[str, Any]] | None = None  # field-level errors of a 4xx


class Status(BaseModel):
    """Liveness / readiness answers."""

    status: str
    ready: bool
    reason: str | None = None
    model: ModelRef | None = None
