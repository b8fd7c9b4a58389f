"""Request and response schemas. The request models are built per loaded model from its feature
lists: one field per input column, a string or an integer for categoricals (an integer means the
category of its digits, as in training), a finite number for numerics (null: the pipeline
imputes it); nothing else is coerced (no booleans, no numeric strings), unknown fields are
rejected. Titles come from the model's name, the label field from its target."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.types import AllowInfNan

from flightdelay.serving.validator import CompiledValidator, build_validator

NUMERIC_TYPES = {"double", "float", "long", "integer"}
Number = Annotated[float, Strict(), AllowInfNan(False)]
Category = Annotated[
    Annotated[str, Strict()] | Annotated[int, Strict()], Field(union_mode="left_to_right")
]
RESERVED = {"model", "threshold", "predictions", "probability", "warnings"}


@dataclass(frozen=True)
class ModelWording:
    """How the answers and schemas name things for one model (from its `model_config`)."""

    title: str  # CamelCase model name: the prefix of every schema title
    label: str  # the per-record label field: the target's name ("delayed" when unknown)
    target: str
    positive: str

    @classmethod
    def of(cls, config: dict[str, Any], name: str) -> ModelWording:
        """The wording of a model with `config` registered as `name`."""
        model_name = str(config.get("model_name") or name)
        title = "".join(w[:1].upper() + w[1:] for w in re.split(r"[^A-Za-z0-9]+", model_name))
        target = str(config.get("target") or "delayed")
        label = target if target not in RESERVED else f"{target}_label"
        positive = config.get("positive", 1)
        return cls(title or "Model", label, target, str(positive))


@dataclass(frozen=True)
class RequestSchemas:
    """Validators for the three accepted bodies (one record, a list, or columns), and the
    answer models."""

    record: type[BaseModel]
    columns: type[BaseModel]
    one: TypeAdapter[Any]
    many: TypeAdapter[Any]
    cols: TypeAdapter[Any]
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    wording: ModelWording
    answers: tuple[type[BaseModel], type[BaseModel]]  # (records answer, columns answer)
    max_batch: int  # records per body (API_MAX_BATCH)
    validator: CompiledValidator  # the same rules, compiled (the /predict hot path)

    @property
    def names(self) -> tuple[str, ...]:
        """Every input column: categoricals, then numerics."""
        return (*self.categorical, *self.numeric)


def _field_types(categorical: list[str], numeric: list[str], nullable: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in categorical:
        out[name] = Category | None if name in nullable else Category
    for name in numeric:
        out[name] = Number | None
    return out


def build_request_schemas(
    categorical: list[str],
    numeric: list[str],
    nullable_categorical: set[str],
    max_batch: int,
    example: dict[str, Any] | None,
    wording: ModelWording | None = None,
) -> RequestSchemas:
    """Schemas for a model with these categorical and numeric input columns."""
    w = wording or ModelWording.of({}, "model")
    types = _field_types(categorical, numeric, nullable_categorical)
    record_fields: dict[str, Any] = {n: (t, Field(...)) for n, t in types.items()}
    column_fields: dict[str, Any] = {
        n: (list[t], Field(..., min_length=1, max_length=max_batch))  # type: ignore[valid-type]
        for n, t in types.items()
    }
    extra: Any = {"examples": [example]} if example else None
    record = create_model(
        f"{w.title}Record",
        __config__=ConfigDict(extra="forbid", json_schema_extra=extra),
        **record_fields,
    )
    col_example = {"columns": {k: [v] for k, v in example.items()}} if example else None
    columns_inner = create_model(
        f"{w.title}ColumnsData", __config__=ConfigDict(extra="forbid"), **column_fields
    )
    columns = create_model(
        f"{w.title}Columns",
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
        wording=w,
        answers=answer_models(w),
        max_batch=max_batch,
        validator=build_validator(categorical, numeric, nullable_categorical, max_batch),
    )


def answer_models(w: ModelWording) -> tuple[type[BaseModel], type[BaseModel]]:
    """The /predict answers of a model: (record or list form, columnar form)."""
    p_text = f"Probability that {w.target} is {w.positive} (the positive class)"
    label_text = "probability >= the model's decision threshold"
    prediction = create_model(
        f"{w.title}Prediction",
        probability=(float, Field(description=p_text)),
        **{w.label: (bool, Field(description=label_text))},  # type: ignore[call-overload]
    )
    records = create_model(
        f"{w.title}Answer",
        model=(ModelRef, ...),
        threshold=(float, ...),
        predictions=(list[prediction], ...),  # type: ignore[valid-type]
        warnings=(list[str], []),
    )
    columns = create_model(
        f"{w.title}ColumnsAnswer",
        model=(ModelRef, ...),
        threshold=(float, ...),
        probability=(list[float], Field(description=p_text)),
        **{w.label: (list[bool], Field(description=label_text))},  # type: ignore[call-overload]
        warnings=(list[str], []),
    )
    return records, columns


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: int
    alias: str | None


class Prediction(BaseModel):
    """One record's answer."""

    probability: float = Field(description="Probability of the positive class")
    delayed: bool = Field(description="probability >= the model's decision threshold")


class PredictResponse(BaseModel):
    """The answer to POST /predict (record or list form)."""

    model: ModelRef
    threshold: float
    predictions: list[Prediction]
    warnings: list[str] = []


MAX_VERSION = 2**31 - 1  # the registry stores versions as 32-bit integers


def _assign_schema(schema: dict[str, Any]) -> None:
    """ModelAssign's JSON schema as validation enforces it: no nulls, exactly one of the two."""
    for prop in schema.get("properties", {}).values():
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if options:
            prop.update(options[0])
        prop.pop("default", None)
    schema["oneOf"] = [{"required": ["alias"]}, {"required": ["version"]}]


class ModelAssign(BaseModel):
    """POST /model: serve another alias or version fleet-wide (exactly one of the two)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra=cast(Any, _assign_schema),
    )
    alias: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$",
        examples=["challenger"],
    )
    version: int | None = Field(default=None, ge=1, le=MAX_VERSION, examples=[1])
    reason: str | None = Field(default=None, max_length=500, description="why (audited)")

    @field_validator("alias", "version", "reason", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null (leave the field out instead)")
        if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_VERSION:
            return int(value)  # JSON Schema's integer: 2.0 is the version 2 (a bool stays one)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelAssign:
        if (self.alias is None) == (self.version is None):
            raise ValueError("give exactly one of 'alias' or 'version'")
        return self


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
