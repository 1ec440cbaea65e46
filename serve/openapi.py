"""OpenAPI details FastAPI cannot infer: the bodies routes read themselves (to count their
bytes), and /v1/search taking JSON or multipart on one route."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from serve.schemas import MAX_K, MAX_TEXT_CHARS, ItemsRequest, SearchRequest

MULTIPART_SEARCH = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "maxLength": MAX_TEXT_CHARS},
        "image": {"type": "string", "format": "binary", "description": "The query image file."},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K},
        "rerank": {"type": "boolean"},
        "filters": {"type": "string", "description": 'A JSON object, e.g. {"categories": '
                                                     '["bag"], "price_max": 50}.'},
        "image_url": {"type": "string"},
    },
}


def document(app: FastAPI) -> None:
    """Install an openapi() that adds the two request bodies of /v1/search."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (SearchRequest, ItemsRequest):  # bodies the routes read themselves
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
        schema["paths"]["/v1/items"]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ItemsRequest"}}},
        }
        schema["paths"]["/v1/search"]["post"]["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SearchRequest"}},
                "multipart/form-data": {"schema": MULTIPART_SEARCH},
            },
        }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
