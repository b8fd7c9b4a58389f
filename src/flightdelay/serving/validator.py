"""The compiled validator of the /predict hot path: msgspec Structs generated from a model's
feature lists when the model loads, with the rules of the pydantic schemas in :mod:`.schemas`
(strings or integers for categoricals, null only where the encoder learned a missing category,
finite numbers or null for numerics; no booleans, no numeric strings, no unknown or missing
fields, 1..API_MAX_BATCH records or column values).

The pydantic schemas stay the reference and the documentation: a body this validator refuses is
validated again by pydantic, whose error names the field and the record (the rare, slow path).
So msgspec only has to never accept what pydantic refuses; what it cannot see itself (a key
given twice) is left to the caller's colon count.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

# a number beyond the largest double decodes as inf: out of these bounds, hence refused
Finite = Annotated[float, msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)]


@dataclass(frozen=True)
class CompiledValidator:
    """Decoders of the three bodies: one record, a list of records, `{"columns": {...}}`."""

    names: tuple[str, ...]  # every input column, in the Structs' field order
    attrs: dict[str, str]  # column -> the Struct attribute holding it (f0, f1, ...)
    one: msgspec.json.Decoder[Any]
    many: msgspec.json.Decoder[Any]
    cols: msgspec.json.Decoder[Any]
    # large bodies, in slices: the records or columns left undecoded (msgspec.Raw), then each
    # slice of records or each column by itself
    raw_many: msgspec.json.Decoder[Any]
    raw_cols: msgspec.json.Decoder[Any]
    column: dict[str, msgspec.json.Decoder[Any]]

    def columns_of(self, records: Sequence[Any]) -> dict[str, tuple[Any, ...]]:
        """A decoded list of records as one tuple per column (transposed in C)."""
        return dict(
            zip(self.names, zip(*map(msgspec.structs.astuple, records), strict=True), strict=True)
        )

    def as_dict(self, record: Any) -> dict[str, Any]:
        """One decoded record as {column: value}."""
        return dict(zip(self.names, msgspec.structs.astuple(record), strict=True))


def _types(categorical: Sequence[str], numeric: Sequence[str], nullable: set[str]) -> list[Any]:
    category: Any = str | int
    out: list[Any] = [category | None if c in nullable else category for c in categorical]
    return out + [Finite | None for _ in numeric]


def build_validator(
    categorical: Sequence[str], numeric: Sequence[str], nullable: set[str], max_batch: int
) -> CompiledValidator:
    """The compiled validator of a model with these input columns (see the module docstring)."""
    names = (*categorical, *numeric)
    attrs = {name: f"f{i}" for i, name in enumerate(names)}
    rename = {a: n for n, a in attrs.items()}
    types = _types(categorical, numeric, nullable)
    struct: Callable[..., Any] = msgspec.defstruct
    record = struct(
        "Record", list(zip(attrs.values(), types, strict=True)),
        forbid_unknown_fields=True, rename=rename, gc=False,
    )  # fmt: skip
    sized = msgspec.Meta(min_length=1, max_length=max_batch)
    column_types = [Annotated[list[t], sized] for t in types]  # type: ignore[valid-type]
    data = struct(
        "ColumnsData", list(zip(attrs.values(), column_types, strict=True)),
        forbid_unknown_fields=True, rename=rename, gc=False,
    )  # fmt: skip
    columns = struct("Columns", [("columns", data)], forbid_unknown_fields=True, gc=False)
    many: Any = Annotated[list[record], sized]  # type: ignore[valid-type]
    raw_data = struct(
        "RawColumnsData", [(a, msgspec.Raw) for a in attrs.values()],
        forbid_unknown_fields=True, rename=rename,
    )  # fmt: skip
    raw_columns = struct("RawColumns", [("columns", raw_data)], forbid_unknown_fields=True)
    return CompiledValidator(
        names=names,
        attrs=attrs,
        one=msgspec.json.Decoder(record),
        many=msgspec.json.Decoder(many),
        cols=msgspec.json.Decoder(columns),
        raw_many=msgspec.json.Decoder(Annotated[list[msgspec.Raw], sized]),
        raw_cols=msgspec.json.Decoder(raw_columns),
        column={n: msgspec.json.Decoder(t) for n, t in zip(names, column_types, strict=True)},
    )
