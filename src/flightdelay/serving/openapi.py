"""The OpenAPI schema follows the model in memory: /docs shows the served model's request
fields and examples, rebuilt after a swap."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from flightdelay.serving.runtime import ModelHolder, ServedModel


def _add_components(schema: dict[str, Any], *models: Any) -> list[dict[str, str]]:
    """Put `models`' JSON schemas into `schema`'s components; returns their $refs."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    refs = []
    for model in models:
        js = model.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(js.pop("$defs", {}))
        components[model.__name__] = js
        refs.append({"$ref": f"#/components/schemas/{model.__name__}"})
    return refs


def predict_request_body(served: ServedModel, schema: dict[str, Any]) -> dict[str, Any]:
    """The /predict requestBody for `served`; adds its record and columns models to `schema`'s
    components. (JSON Schema cannot say that every column has the same length: a columnar body
    whose columns differ is a 422 naming them.)"""
    record_ref, columns_ref = _add_components(schema, served.schemas.record, served.schemas.columns)
    examples = {}
    if served.example:
        ex = served.example
        examples = {
            "one record": {"value": ex},
            "a list": {"value": [ex, ex]},
            "columns": {"value": {"columns": {k: [v, v] for k, v in ex.items()}}},
        }
    listed = {"type": "array", "items": record_ref, "minItems": 1}
    one_of = [record_ref, listed | {"maxItems": served.schemas.max_batch}, columns_ref]
    return {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": one_of}, "examples": examples}},
    }


def predict_answer(served: ServedModel, schema: dict[str, Any]) -> dict[str, Any]:
    """The /predict 200 answer for `served`: the record/list form or the columnar form."""
    refs = _add_components(schema, *served.schemas.answers)
    return {
        "description": "one probability (and label) per record; columns in, columns out",
        "content": {"application/json": {"schema": {"oneOf": refs}}},
    }


def install_dynamic_openapi(app: FastAPI, holder: ModelHolder) -> None:
    """Make `app.openapi()` describe /predict with the model in memory (cached per version)."""
    cache: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        served = holder.current
        key = f"{served.name}:{served.version}" if served else "none"
        if cache.get("key") == key:
            return cache["schema"]  # type: ignore[no-any-return]
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        if served is not None:
            post = schema["paths"]["/predict"]["post"]
            post["requestBody"] = predict_request_body(served, schema)
            post["responses"]["200"] = predict_answer(served, schema)
        cache.update(key=key, schema=schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


STATUS_TEXT = {
    400: "the body is not valid JSON",
    401: "no bearer token (Authorization: Bearer <API_TOKEN>)",
    403: "wrong token, or swaps disabled (API_TOKEN empty or a placeholder)",
    404: "no such model, version or alias",
    413: "body, batch or column too large",
    422: "a field is wrong (named in `detail`)",
    503: "no model loaded yet, or the registry is unreachable",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a route: each status with its meaning and the one error shape."""
    from flightdelay.serving.schemas import Problem

    return {s: {"description": STATUS_TEXT[s], "model": Problem} for s in statuses}
