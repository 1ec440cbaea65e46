"""Request bodies: read under the byte limit, parsed as JSON or multipart, inline images decoded."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from pardus.deployments.streams import CappedBuffer, TooManyBytes
from pardus.serve.errors import ApiError, bad_request, validation_error

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
JSON_PARTS = {"filters": '{"categories": ["bag"], "price_max": 50}',  # a form's objects
              "weights": '{"dense": 1.0, "lexical": 0.5}'}


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    body = CappedBuffer(limit)
    try:
        async for chunk in request.stream():
            body.add(chunk)
    except TooManyBytes:
        raise ApiError(413, "payload_too_large", f"the request is over the limit of {limit} "
                       "bytes (PARDUS_SERVING__MAX_REQUEST_BYTES)") from None
    request._body = body.value()  # starlette's form parser reads the cached body
    return request._body


def parse_json(model: type[BaseModel], body: bytes) -> Any:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


def parse_fields(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


async def form_fields(request: Request) -> tuple[dict[str, Any], bytes | None]:
    """A multipart (or urlencoded) search: its text fields, filters and weights parsed from
    JSON, and the file part named `image`."""
    try:
        form = await request.form(max_files=1, max_fields=16)
    except HTTPException as exc:  # Starlette's refusal of a malformed or oversized form
        raise bad_request("invalid_form", f"the form cannot be read: {exc.detail} Send at "
                          "most 16 fields and one file, each field under 1 MB.") from None
    fields: dict[str, Any] = {}
    image = None
    for key, value in form.multi_items():
        if key == "image" and hasattr(value, "read"):
            image = await value.read()
        elif key in JSON_PARTS and isinstance(value, str):
            try:
                fields[key] = json.loads(value) if value else None
            except (json.JSONDecodeError, RecursionError):
                raise bad_request(f"invalid_{key}", f"{key} must be a JSON object, e.g. "
                                  f"{JSON_PARTS[key]}", key) from None
        elif isinstance(value, str):
            fields[key] = value
        else:
            raise bad_request("unexpected_file", f"only the image may be a file, not {key!r}", key)
    return fields, image


def inline_image(value: str, field: str = "image") -> bytes:
    """Bytes of a base64 string or a data URL ("data:image/png;base64,...")."""
    payload = value.strip()
    if payload.startswith("data:"):
        header, _, payload = payload.partition(",")
        if not header.endswith(";base64"):
            raise bad_request("image_not_base64", "a data URL image must be base64 "
                              "(data:image/...;base64,...)", field)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("image_not_base64", "the image is not valid base64; send base64 or a "
                          "data URL, or upload the file as multipart/form-data", field) from None
    if not data:
        raise bad_request("image_empty", "the image is empty", field)
    return data
