"""The HTTP ingress: FastAPI routes that check the caller and the input, then hand off to
SearchService; the embedder and reranker arrive as deployment handles."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Path as PathParam, Query as QueryParam, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from ray import serve

from deployments.embedder.images import ImageLimits
from deployments.catalogue.items import ID_PATTERN
from deployments.settings import Settings
from serve.errors import ApiError, bad_request, install_handlers, validation_error
from deployments.catalogue.gateway import StoreGateway
from serve.images import ImageLibrary
from deployments.metrics import count_requests
from serve.openapi import document
from serve.schemas import (ERROR_RESPONSES, ErrorResponse, Health, Item,
                           ItemsRequest, ItemsResponse, Readiness, SearchRequest, SearchResponse)
from serve.search import Query, SearchService, item_view

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")

api = FastAPI(title="Pardus", version="1", description="Multimodal product search: text, "
              "image or both; Visualized BGE + Milvus + a vision-language reranker.")
install_handlers(api)
document(api)
count_requests(api)

if STATIC.is_dir():
    api.mount("/static", StaticFiles(directory=STATIC), name="static")

# The page loads only its own files; previews are blob: URLs of the shopper's picture.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
NOT_FOUND = ERROR_RESPONSES | {404: {"model": ErrorResponse, "description": "No such item."}}
ItemIdPath = Annotated[str, PathParam(pattern=ID_PATTERN, description="The item id.")]


def decode_inline_image(value: str, field: str = "image") -> bytes:
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


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it passes `limit` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, "payload_too_large", f"the request is over the limit of {limit} "
                           "bytes (PARDUS_SERVING__MAX_REQUEST_BYTES)")
    request._body = bytes(body)  # starlette's form parser reads the cached body
    return request._body


async def _multipart_fields(request: Request) -> tuple[dict[str, Any], bytes | None]:
    form = await request.form(max_files=1, max_fields=16)
    fields: dict[str, Any] = {}
    image = None
    for key, value in form.multi_items():
        if key == "image" and hasattr(value, "read"):
            image = await value.read()
        elif key == "filters":
            try:
                fields[key] = json.loads(value) if value else None
            except json.JSONDecodeError:
                raise bad_request("invalid_filters", 'filters must be a JSON object, e.g. '
                                  '{"categories": ["bag"], "price_max": 50}', "filters") from None
        elif isinstance(value, str):
            fields[key] = value
        else:
            raise bad_request("unexpected_file", f"only the image may be a file, not {key!r}", key)
    return fields, image


def _auth_header(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


@serve.deployment(name="Ingress", ray_actor_options={"num_cpus": 0.25},
                  max_ongoing_requests=256, graceful_shutdown_timeout_s=5)
@serve.ingress(api)
class Ingress:
    def __init__(self, embedder, reranker=None, settings: dict | None = None):
        """embedder, reranker: deployment handles (the reranker is used only when enabled)."""
        self.settings = Settings(**(settings or {}))
        enabled = reranker is not None and self.settings.reranker.enabled
        self.embedder, self.reranker = embedder, reranker if enabled else None
        self.keys = [k.get_secret_value().encode() for k in self.settings.serving.api_keys]
        limits = ImageLimits(self.settings.embedder.max_image_pixels,
                             self.settings.embedder.max_image_bytes)
        self.store = StoreGateway(self.settings.milvus, self._dim)
        self.images = ImageLibrary(self.settings.serving.image_root, limits)
        rerank = self._rerank if self.reranker is not None else None
        self.service = SearchService(self.settings, self._embed, rerank, self.store, self.images)
        if self.settings.serving.cors_origins:  # off unless origins are named
            api.add_middleware(CORSMiddleware, allow_origins=self.settings.serving.cors_origins,
                               allow_methods=["GET", "POST", "DELETE"],
                               allow_headers=["Authorization", "X-API-Key", "Content-Type"])

    # -- handles as plain async callables (SearchService knows nothing of Serve) --------------
    async def _embed(self, query):
        return await self.embedder.embed.remote(query)

    async def _dim(self) -> int:
        return await self.embedder.dim.remote()

    async def _rerank(self, text, image, candidates):
        return await self.reranker.rerank.remote(text, image, candidates)

    def _check_key(self, request: Request, required: bool) -> None:
        if not self.keys or not required:
            return
        given = (_auth_header(request) or "").encode()
        if not any(hmac.compare_digest(given, key) for key in self.keys):
            raise ApiError(401, "unauthorized", "a valid API key is required: send "
                           "'Authorization: Bearer <key>' or 'X-API-Key: <key>'")

    # -- routes ---------------------------------------------------------------------------------
    @api.get("/", include_in_schema=False)
    async def page(self):
        if not self.settings.serving.web_page or not (STATIC / "index.html").exists():
            raise ApiError(404, "not_found", "the web page is off (PARDUS_SERVING__WEB_PAGE); "
                           "the API is under /v1 (see /docs)")
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @api.get("/healthz", response_model=Health, tags=["health"])
    async def healthz(self) -> Health:
        """Liveness: the ingress answers."""
        return Health(status="ok")

    @api.get("/readyz", response_model=Readiness, tags=["health"],
             responses={503: {"model": Readiness, "description": "Not ready."}})
    async def readyz(self):
        """Readiness: Milvus reachable and the embedder loaded (the reranker is optional)."""
        checks = {"milvus": await self.store.check(), "embedder": await self._probe(self._dim)}
        if self.reranker is not None:
            checks["reranker"] = await self._probe(self.reranker.stats.remote)
        ready = checks["milvus"] == "ok" and checks["embedder"] == "ok"
        body = Readiness(ready=ready, checks=checks).model_dump()
        if ready:
            return body
        return JSONResponse(body, 503, {"Retry-After": str(self.settings.serving.retry_after_s)})

    async def _probe(self, call) -> str:
        try:
            await asyncio.wait_for(call(), 5.0)
            return "ok"
        except Exception as exc:
            return f"unavailable: {type(exc).__name__}"

    @api.post("/v1/search", response_model=SearchResponse, tags=["search"],
              responses=ERROR_RESPONSES)
    async def search(self, request: Request) -> SearchResponse:
        """Search by text, image or both: JSON (image as base64 or a data URL) or
        multipart/form-data (the image as a file part named `image`)."""
        self._check_key(request, self.settings.serving.search_requires_key)
        body = await read_body(request, self.settings.serving.max_request_bytes)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        image = None
        try:
            if kind == "application/json":
                parsed = SearchRequest.model_validate_json(body)
            elif kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
                fields, image = await _multipart_fields(request)
                parsed = SearchRequest.model_validate(fields)
            else:
                raise ApiError(415, "unsupported_media_type", "send application/json or "
                               "multipart/form-data")
        except ValidationError as exc:
            raise validation_error(list(exc.errors())) from None
        if parsed.image is not None:
            image = decode_inline_image(parsed.image)
        if parsed.image_url is not None:
            image = await self._fetch(parsed.image_url)
        if image is None and not parsed.text.strip():
            raise bad_request("empty_query", "give a text, an image, or both", "text")
        return await self.service.search(Query(parsed.text, image, parsed.k, parsed.filters,
                                                parsed.rerank))

    async def _fetch(self, url: str) -> bytes:
        from serve.image_urls import fetch_allowed

        return await fetch_allowed(url, self.settings.serving,
                                   self.settings.embedder.max_image_bytes)

    @api.post("/v1/items", response_model=ItemsResponse, tags=["items"],
              responses=ERROR_RESPONSES)
    async def add_items(self, request: Request):
        """Add or replace items (by id) with their images; each bad image fails alone."""
        self._check_key(request, True)
        raw = await read_body(request, self.settings.serving.max_request_bytes)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise ApiError(415, "unsupported_media_type", "send the items as application/json")
        try:
            body = ItemsRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise validation_error(list(exc.errors())) from None
        images = [decode_inline_image(item.image, f"items[{i}].image")
                  for i, item in enumerate(body.items)]
        result = await self.service.upsert(body.items, images)
        return JSONResponse(result.model_dump(), 200 if result.upserted else 422)

    @api.get("/v1/items/{item_id}", response_model=Item, tags=["items"], responses=NOT_FOUND)
    async def get_item(self, item_id: ItemIdPath) -> Item:
        return item_view(await self.service.get(item_id))

    @api.delete("/v1/items/{item_id}", status_code=204, tags=["items"], responses=NOT_FOUND)
    async def delete_item(self, request: Request, item_id: ItemIdPath) -> Response:
        self._check_key(request, True)
        await self.service.delete(item_id)
        return Response(status_code=204)

    @api.get("/v1/items/{item_id}/image", tags=["items"], response_class=Response,
             responses={200: {"content": {"image/jpeg": {}}}} | NOT_FOUND)
    async def item_image(self, item_id: ItemIdPath,
                         size: Annotated[int | None, QueryParam(ge=32, le=1024)] = None):
        """The item's picture as a JPEG thumbnail at most size x size pixels."""
        size = size or self.settings.serving.thumbnail_px
        data = await self.service.thumbnail(item_id, size)
        return Response(data, media_type="image/jpeg",
                        headers={"Cache-Control": "public, max-age=300"})
