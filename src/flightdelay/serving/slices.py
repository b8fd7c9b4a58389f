"""Large /predict bodies (over SLICE_BYTES) are validated in slices, with the event loop let run
between them, so that the largest body (API_MAX_BODY_BYTES, API_MAX_BATCH records) never holds
the loop for long: /health and the other requests keep answering while it is scored (D5 of the
hardening issue). One C call per slice: a slice of RECORDS_PER_SLICE records, or one column.

First the body is decoded with its records or columns left undecoded (`msgspec.Raw`: JSON
checked, nothing built), which also enforces the batch limits; then each slice is decoded into
the model's Structs. Refusals and repeated keys go the reference way, as in :mod:`.hotpath`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from flightdelay.serving.runtime import ServedModel

SLICE_BYTES = 1 << 20  # bodies above this size are validated in slices
RECORDS_PER_SLICE = 1000
COUNT_BYTES = 4 << 20  # the colon count of a large body, this many bytes at a time


async def records_in_slices(served: ServedModel, body: bytes) -> tuple[dict[str, Any], int] | None:
    """(columns, record count) of a large list body; None when a key may be given twice.
    Raises msgspec's errors for a body the compiled validator refuses."""
    validator = served.schemas.validator
    raws = validator.raw_many.decode(body)
    columns: dict[str, list[Any]] = {c: [] for c in validator.names}
    for start in range(0, len(raws), RECORDS_PER_SLICE):
        await asyncio.sleep(0)  # let the loop run: other requests answer between slices
        part = raws[start : start + RECORDS_PER_SLICE]
        chunk = b"[" + b",".join(part) + b"]"
        if chunk.count(b":") != len(part) * len(validator.names):
            return None
        for column, values in validator.columns_of(validator.many.decode(chunk)).items():
            columns[column] += values
    return columns, len(raws)


async def columns_in_slices(served: ServedModel, body: bytes) -> tuple[dict[str, Any], int] | None:
    """(columns, record count) of a large columnar body; None when a key may be given twice or
    the columns differ in length (the reference way names them)."""
    validator = served.schemas.validator
    if await colons(body) != 1 + len(validator.names):
        return None
    raw = msgspec.structs.astuple(validator.raw_cols.decode(body).columns)
    columns = {}
    for column, values in zip(validator.names, raw, strict=True):
        await asyncio.sleep(0)
        columns[column] = validator.column[column].decode(values)
    lengths = {len(v) for v in columns.values()}
    return (columns, lengths.pop()) if len(lengths) == 1 else None


async def colons(body: bytes) -> int:
    """`body.count(b":")`, COUNT_BYTES at a time with the loop let run in between."""
    total = 0
    for start in range(0, len(body), COUNT_BYTES):
        total += body.count(b":", start, start + COUNT_BYTES)
        await asyncio.sleep(0)
    return total
