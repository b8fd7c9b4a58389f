"""What a request reads: the served model, immutable once built, and the loading error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import orjson

from flightdelay.serving.runtime.scorer import LinearScorer
from flightdelay.serving.schemas import ModelInfo, ModelRef, RequestSchemas
from flightdelay.serving.scrub import scrub

if TYPE_CHECKING:
    from flightdelay.serving.runtime.scorer import Scorer


class ModelUnavailable(Exception):
    """The requested model does not exist, cannot be reached, or failed its checks."""

    def __init__(self, message: str, status: int = 503) -> None:
        super().__init__(scrub(message, 500))  # it reaches 503 bodies and logs: no credentials
        self.status = status


@dataclass(frozen=True)
class ServedModel:
    """Everything a request needs, immutable once built."""

    name: str
    version: int
    alias: str | None
    run_id: str
    scorer: Scorer
    fallback_reason: str | None
    threshold: float
    schemas: RequestSchemas
    info: ModelInfo
    example: dict[str, Any] | None = field(default=None)

    @property
    def kind(self) -> str:
        """Which scorer serves it: "linear" (compiled) or "sklearn" (the fallback)."""
        return self.scorer.kind

    @property
    def ref(self) -> ModelRef:
        """Name, version and alias: which model answered."""
        return ModelRef(name=self.name, version=self.version, alias=self.alias)

    @cached_property
    def ref_dict(self) -> dict[str, Any]:
        """`ref` as a plain dict, built once (it goes into every response)."""
        return self.ref.model_dump()

    @property
    def label(self) -> str:
        """The per-record label field of the answers (named after the model's target)."""
        return self.schemas.wording.label

    @cached_property
    def answer_tails(self) -> tuple[bytes, bytes]:
        """What follows a single-record answer's probability: (below, at or above threshold)."""
        key = orjson.dumps(self.label)
        return tuple(  # type: ignore[return-value]
            b"," + key + b":" + word + b'}],"warnings":' for word in (b"false", b"true")
        )

    @cached_property
    def answer_head(self) -> bytes:
        """The constant start of a single-record /predict answer, up to its probability."""
        constant = {"model": self.ref_dict, "threshold": self.threshold, "predictions": None}
        return orjson.dumps(constant)[: -len(b"null}")] + b'[{"probability":'

    @cached_property
    def struct_score(self) -> Callable[[Any], float | None]:
        """One record's probability from a record the compiled validator decoded (its common
        case, see `LinearScorer.unrolled`); always None (the general path) for the fallback."""
        scorer = self.scorer
        if not isinstance(scorer, LinearScorer):
            return lambda _: None
        attrs = self.schemas.validator.attrs
        return scorer.unrolled({column: f"r.{attr}" for column, attr in attrs.items()})

    def warm(self) -> None:
        """Build what the hot path reads before the model serves (not on its first request)."""
        _ = self.answer_head, self.answer_tails, self.ref_dict, self.struct_score
