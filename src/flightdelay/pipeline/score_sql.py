"""The compiled linear scorer as ONE Spark SQL expression of P(positive) (pure: no Spark here).

z = bias + a CASE WHEN per categorical column (one WHEN per learned category -> its weight; NULL
-> the learned missing weight; anything else -> 0) + per numeric column weight * (the value, or
the imputer's fill when NULL/NaN), with the scaler folded into weight and bias (exactly as
:class:`~flightdelay.serving.runtime.scorer.LinearScorer`); p = 1 / (1 + exp(-z)). Doubles are
written as their shortest round-trip literal, so the expression carries the exact weights.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def _category_test(col: str, kind: str, category: Any) -> str | None:
    """The SQL test `col` matches `category` the way the model's coercion sees it."""
    text = str(category)
    if kind == "string":
        return f"{col} = {_string(text)}"
    if kind in INTEGRAL:  # Spark's CAST(... AS STRING) writes 3 and true as the model does
        return f"CAST({col} AS STRING) = {_string(text)}"
    try:
        return f"{col} = {_double(float(text))}"
    except ValueError:
        return None  # a non-numeric category never matches a number


def category_term(name: str, kind: str, weights: Mapping[Any, float]) -> str:
    """CASE WHEN per category -> its weight; missing -> the learned missing weight; else 0."""
    col = _ident(name)
    if kind not in {"string", *INTEGRAL, *FLOATING}:
        raise SqlUnusable(f"categorical column {name} has type {kind}")
    missing = f"{col} IS NULL" + (f" OR isnan({col})" if kind in FLOATING else "")
    whens = {missing: f"WHEN {missing} THEN {_double(weights.get(None, 0.0))}"}
    for category, weight in weights.items():  # a category keyed twice (3 and "3") once
        test = None if category is None else _category_test(col, kind, category)
        if test is not None and test not in whens:
            whens[test] = f"WHEN {test} THEN {_double(weight)}"
    return f"(CASE {' '.join(whens.values())} ELSE 0.0D END)"


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
