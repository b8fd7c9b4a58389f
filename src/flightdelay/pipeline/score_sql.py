"""The compiled linear scorer as ONE Spark SQL expression of P(positive) (pure: no Spark here).

z = bias + a CASE WHEN per categorical column (one WHEN per learned category -> its weight; NULL
-> the learned missing weight; anything else -> 0; beyond LEAF categories a binary search: nested
CASE WHEN value < the middle category, so a row makes ~log2(n) comparisons, not n; the order is
Spark's: UTF-8 bytes for strings, numbers for doubles) + per numeric column weight * (the value, or
the imputer's fill when NULL/NaN), with the scaler folded into weight and bias (exactly as
:class:`~flightdelay.serving.runtime.scorer.LinearScorer`); p = 1 / (1 + exp(-z)). Doubles are
written as their shortest round-trip literal, so the expression carries the exact weights.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from flightdelay.pipeline.score import ServedVersion

INTEGRAL = {"tinyint", "smallint", "int", "bigint", "boolean"}
FLOATING = {"float", "double"}


class SqlUnusable(Exception):
    """The served model cannot run as a Spark SQL expression (the reason is the message)."""


def _double(value: float) -> str:
    """A Spark SQL DOUBLE literal that parses back to exactly `value` (repr round-trips)."""
    return f"({float(value)!r}D)".replace("e", "E")


def _string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


LEAF = 8  # categories tested one by one; a column with more is searched (binary search)


def _category_key(kind: str, category: Any) -> tuple[Any, str] | None:
    """(the sort key, the SQL literal) `category` is matched by, the way the model's coercion
    sees it; None when no value of the column can match it."""
    text = str(category)
    if kind == "string" or kind in INTEGRAL:  # Spark's CAST(... AS STRING) writes 3 and true
        return text.encode("utf-8"), _string(text)  # as the model does; byte order = Spark's
    try:
        value = float(text)
    except ValueError:
        return None  # a non-numeric category never matches a number
    if math.isnan(value):
        return None  # NaN is missing: the first WHEN takes it
    return value + 0.0, _double(value)  # -0.0 = 0.0 in Spark: keyed once


def _search(lhs: str, items: Sequence[tuple[Any, str, float]]) -> str:
    """The weight of `lhs` among the sorted (key, literal, weight) `items`, else 0."""
    if len(items) <= LEAF:
        whens = " ".join(f"WHEN {lhs} = {lit} THEN {_double(w)}" for _, lit, w in items)
        return f"(CASE {whens} ELSE 0.0D END)"
    mid = len(items) // 2
    low, high = _search(lhs, items[:mid]), _search(lhs, items[mid:])
    return f"(CASE WHEN {lhs} < {items[mid][1]} THEN {low} ELSE {high} END)"


def category_term(name: str, kind: str, weights: Mapping[Any, float]) -> str:
    """CASE WHEN per category -> its weight; missing -> the learned missing weight; else 0
    (beyond LEAF categories: a binary search over them)."""
    col = _ident(name)
    if kind not in {"string", *INTEGRAL, *FLOATING}:
        raise SqlUnusable(f"categorical column {name} has type {kind}")
    missing = f"{col} IS NULL" + (f" OR isnan({col})" if kind in FLOATING else "")
    lhs = f"CAST({col} AS STRING)" if kind in INTEGRAL else col
    items: dict[Any, tuple[Any, str, float]] = {}
    for category, weight in weights.items():  # a category keyed twice (3 and "3") once: the first
        key = None if category is None else _category_key(kind, category)
        if key is not None and key[0] not in items:
            items[key[0]] = (key[0], key[1], weight)
    if_missing = f"WHEN {missing} THEN {_double(weights.get(None, 0.0))}"
    if len(items) > LEAF:
        return f"(CASE {if_missing} ELSE {_search(lhs, sorted(items.values()))} END)"
    whens = " ".join(
        [if_missing, *(f"WHEN {lhs} = {lit} THEN {_double(w)}" for _, lit, w in items.values())]
    )
    return f"(CASE {whens} ELSE 0.0D END)"


def linear_expression(scorer: Any, types: Mapping[str, str]) -> str:
    """The LinearScorer as one SQL expression of P(positive)."""
    terms = [_double(scorer.bias)]
    for name, weights in zip(scorer.categorical, scorer.cat_weights, strict=True):
        terms.append(category_term(name, types[name], weights))
    for name, w, fill in zip(scorer.numeric, scorer.num_weights, scorer.num_fill, strict=True):
        x = f"CAST({_ident(name)} AS DOUBLE)"
        value = f"CASE WHEN {x} IS NULL OR isnan({x}) THEN {_double(fill)} ELSE {x} END"
        terms.append(f"{_double(w)} * ({value})")
    return f"1.0D / (1.0D + exp(-({' + '.join(terms)})))"


def compiled_expression(model: ServedVersion, types: Mapping[str, str]) -> str:
    """The served pipeline as SQL; SqlUnusable when it does not compile to the linear scorer."""
    from flightdelay.core.model_code import load_pipeline
    from flightdelay.serving.runtime.compile import NotCompilable, compile_pipeline

    if not model.pipeline_file.is_file():
        raise SqlUnusable("the model has no skops pipeline to compile")
    try:
        scorer = compile_pipeline(load_pipeline(str(model.pipeline_file)))
    except NotCompilable as exc:
        raise SqlUnusable(f"the pipeline does not compile: {exc}") from None
    if {*scorer.categorical, *scorer.numeric} != set(model.inputs):
        raise SqlUnusable("the compiled scorer's columns differ from the signature's")
    return linear_expression(scorer, types)
