"""Request bodies: every one under the byte limit and arriving in time, /v1/search's as JSON
or as a form, inline images decoded.

FastAPI parses a JSON body or a form, not either on one route, so /v1/search reads its body in
a dependency (search_body) through Starlette's public calls, and serve/openapi.py documents
both shapes from the same model.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pardus.deployments.errors import BadQuery, PardusError, TooLarge
from pardus.serve.errors import UnsupportedMediaType, error_response, validation_error
from pardus.serve.schemas import SearchRequest

FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")
MAX_FORM_FIELDS = 16
# What a form carries as JSON text (JSON requests carry these as objects), with an example.
JSON_PARTS = {"filters": '{"categories": ["bag"], "price_max": 50}',
              "weights": '{"dense": 1.0, "lexical": 0.5}',
              "facets": '["category", "price"]',
              "refine": '{"brand": ["Korvex"], "price": ["25-50"]}',
              "boosts": '{"out_of_stock": "exclude", "popularity": 0.2}'}
IMAGE_PART = "image"  # the one file part of a search form


def too_large(limit: int) -> TooLarge:
    return TooLarge(f"the request is over the limit of {limit} bytes "
                    "(PARDUS_SERVING__MAX_REQUEST_BYTES)", code="payload_too_large")


class BodyLimit:
    """ASGI middleware: a body over `limit` bytes is refused with 413 as soon as it shows, by
    its Content-Length or while it streams in, before it is held in memory. Written by hand:
    Starlette has no body limit, and a route that counts its own bytes must read the body
    before FastAPI could parse it."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await error_response(too_large(self.limit))(scope, receive, send)
            return
        seen, state = 0, {"started": False, "refused": False}

        async def counted() -> Message:
            nonlocal seen
            if state["refused"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    if state["started"]:  # too late to answer 413: the app has answered
                        raise too_large(self.limit)
                    state["refused"] = True
                    await error_response(too_large(self.limit))(scope, receive, send)
                    return {"type": "http.disconnect"}  # the app stops reading
            return message

        async def guarded(message: Message) -> None:
            if not state["refused"]:  # after our 413 the app's answer goes nowhere
                state["started"] = True
                await send(message)

        await self.app(scope, counted, guarded)


def incomplete_body(received: int, declared: bytes, timeout_s: float) -> BadQuery:
    where = (f"{received} of the {int(declared)} bytes its Content-Length announced"
             if declared.isdigit() else f"{received} bytes")
    return BadQuery(f"the body stopped after {where}: nothing more came within {timeout_s:g} s "
                    "(PARDUS_SERVING__BODY_TIMEOUT_S); send the whole body, with a "
                    "Content-Length that matches it", code="incomplete_body")


async def _answer(error: PardusError, scope: Scope, receive: Receive, send: Send) -> None:
    """The error, and the connection closed after it: the rest of the body may still come."""
    response = error_response(error)
    response.headers["Connection"] = "close"
    await response(scope, receive, send)


class BodyTimeout:
    """ASGI middleware: a body whose next piece does not come within `timeout_s` is answered
    400 incomplete_body (uvicorn waits for a body shorter than its Content-Length forever);
    a client that leaves mid-body ends its request quietly, with no answer and no error in
    the log. Once the body is whole, receiving waits for the disconnect untimed, as ASGI
    says."""

    def __init__(self, app: ASGIApp, timeout_s: float):
        self.app, self.timeout_s = app, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        state = {"received": 0, "whole": False, "ended": False, "started": False}

        async def timed() -> Message:
            if state["ended"]:  # answered, or the client left: the app stops reading
                return {"type": "http.disconnect"}
            if state["whole"]:
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):
                    message = await receive()
            except TimeoutError:
                state["ended"] = True
                if not state["started"]:
                    await _answer(incomplete_body(state["received"], declared, self.timeout_s),
                                  scope, receive, send)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["whole"] = not message.get("more_body", False)
            elif message["type"] == "http.disconnect":
                state["ended"] = True
            return message

        async def guarded(message: Message) -> None:
            if not state["ended"]:  # after our 400, or with no one to answer, nothing goes
                state["started"] = True
                await send(message)

        try:
            await self.app(scope, timed, guarded)
        except ClientDisconnect:  # the app's way to stop reading a body that ended
            if not state["ended"]:
                raise


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def parse_json(model: type[BaseModel], body: bytes | str) -> Any:
    """JSON typed strictly: true is no 1, "5" no 5 (a whole number is still a float)."""
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


def parse_fields(model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """A form's fields: text, parsed as each field's type ("5" as 5, "false" as False)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise validation_error(list(exc.errors())) from None


async def form_fields(request: Request) -> tuple[dict[str, Any], bytes | None]:
    """A form's text fields (filters and weights parsed from JSON) and its file part named
    `image`."""
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except HTTPException as exc:  # Starlette's refusal of a malformed or oversized form
        raise BadQuery(f"the form cannot be read: {exc.detail} Send at most "
                       f"{MAX_FORM_FIELDS} fields and one file, each field under 1 MB.",
                       code="invalid_form") from None
    fields: dict[str, Any] = {}
    image = None
    for key, value in form.multi_items():
        if key == IMAGE_PART and hasattr(value, "read"):
            image = await value.read()
        elif key in JSON_PARTS and isinstance(value, str):
            try:
                fields[key] = json.loads(value) if value else None
            except (json.JSONDecodeError, RecursionError):
                raise BadQuery(f"{key} must be a JSON object, e.g. {JSON_PARTS[key]}",
                               code=f"invalid_{key}", field=key) from None
        elif isinstance(value, str):
            fields[key] = value
        else:
            raise BadQuery(f"only the image may be a file, not {key!r}", code="unexpected_file",
                           field=key)
    return fields, image


def inline_image(value: str, field: str = "image") -> bytes:
    """Bytes of a base64 string or a data URL ("data:image/png;base64,...")."""
    payload = value.strip()
    if payload.startswith("data:"):
        header, _, payload = payload.partition(",")
        if not header.endswith(";base64"):
            raise BadQuery("a data URL image must be base64 (data:image/...;base64,...)",
                           code="image_not_base64", field=field)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise BadQuery("the image is not valid base64; send base64 or a data URL, or upload the "
                       "file as multipart/form-data", code="image_not_base64",
                       field=field) from None
    if not data:
        raise BadQuery("the image is empty", code="image_empty", field=field)
    return data


@dataclass
class SearchBody:
    request: SearchRequest
    image: bytes | None  # the query picture, from the JSON (base64) or the form's file part


async def search_body(request: Request) -> SearchBody:
    """The dependency that reads POST /v1/search: JSON or a form, validated by SearchRequest."""
    kind, image = content_type(request), None
    if kind == "application/json":
        parsed = parse_json(SearchRequest, await request.body())
    elif kind in FORM_TYPES:
        fields, image = await form_fields(request)
        # The parts sent as JSON text are JSON, typed as strictly as a JSON body's.
        parse_json(SearchRequest, json.dumps({k: v for k, v in fields.items() if k in JSON_PARTS}))
        parsed = parse_fields(SearchRequest, fields)
    else:
        raise UnsupportedMediaType("send application/json or multipart/form-data")
    if parsed.image is not None:
        image = inline_image(parsed.image)
    return SearchBody(parsed, image)


async def json_only(request: Request) -> None:
    """The dependency of JSON-only routes: another content type is a 415, not a 422."""
    if content_type(request) != "application/json":
        raise UnsupportedMediaType("send the body as application/json")
