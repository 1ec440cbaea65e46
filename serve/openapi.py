"""OpenAPI details FastAPI cannot infer: the bodies routes read themselves (to count their
bytes), and /v1/search taking JSON or multipart on one route (the form derived from the JSON
model, so the two never drift apart)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pardus.serve.schemas import ItemsRequest, SearchRequest

REF = "#/components/schemas/{model}"
FORM_PARTS = {  # how a form carries what JSON carries otherwise
    "image": {"type": "string", "format": "binary", "description": "The query image file."},
    "filters": {"type": "string", "description": 'SearchFilters as JSON text, e.g. '
                                                 '{"categories": ["bag"], "price_max": 50}.'},
    "weights": {"type": "string", "description": 'Weights as JSON text, e.g. '
                                                 '{"dense": 1.0, "lexical": 0.5}.'},
}


def _form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field is never null: an optional field is simply left out."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")},
                **options[0]}
    return schema


def multipart_search_schema() -> dict[str, Any]:
    """SearchRequest as multipart/form-data."""
    properties = SearchRequest.model_json_schema(ref_template=REF)["properties"]
    return {"type": "object", "properties": {
        name: FORM_PARTS.get(name) or _form_field(schema) for name, schema in properties.items()}}


def document(app: FastAPI) -> None:
    """Install an openapi() that adds the two request bodies of /v1/search and /v1/items."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (SearchRequest, ItemsRequest):  # bodies the routes read themselves
            body = model.model_json_schema(ref_template=REF)
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        schema["paths"]["/v1/items"]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model="ItemsRequest")}}},
        }
        schema["paths"]["/v1/search"]["post"]["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": REF.format(model="SearchRequest")}},
                "multipart/form-data": {"schema": multipart_search_schema()},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
