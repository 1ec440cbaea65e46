"""The one hand-written piece of the OpenAPI: POST /v1/search's request body, which is JSON or a
form on one route (FastAPI documents one or the other). Both shapes come from SearchRequest, so
they never drift from what the route accepts (tests/serve/test_openapi.py checks it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pardus.serve.bodies import IMAGE_PART, JSON_PARTS
from pardus.serve.schemas import SearchRequest

DEFS = "#/$defs/"


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """The schema with its local $refs replaced by the definitions (the models nested in a
    request are not recursive), so it stands alone inside an operation."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith(DEFS):
            return _inline(defs[ref.removeprefix(DEFS)], defs)
        return {key: _inline(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline(value, defs) for value in schema]
    return schema


def standalone_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return _inline(schema, schema.get("$defs", {}))


def _form_part(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A field of the form: the image is a file, filters and weights are JSON text, the rest
    as in JSON but never null (an optional field is simply left out)."""
    if name == IMAGE_PART:
        return {"type": "string", "format": "binary", "description": "The query image file."}
    if name in JSON_PARTS:
        return {"type": "string", "description": f"As in JSON, written as JSON text, e.g. "
                                                 f"{JSON_PARTS[name]}."}
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        return {**{k: v for k, v in schema.items() if k not in ("anyOf", "default")},
                **options[0]}
    return schema


def search_request_body() -> dict[str, Any]:
    """openapi_extra of POST /v1/search: its body as JSON and as multipart/form-data."""
    schema = standalone_schema(SearchRequest)
    form = {"type": "object", "properties": {
        name: _form_part(name, part) for name, part in schema["properties"].items()}}
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": schema},
        "multipart/form-data": {"schema": form},
    }}}
