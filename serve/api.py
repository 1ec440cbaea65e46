"""The HTTP API: routes that check the caller and the input, then hand off to SearchService.

`create_api` builds one FastAPI app per service (a Serve replica, a test), so per-replica
settings such as CORS never touch a module-level object.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from pardus.deployments.catalogue.items import ID_PATTERN
from pardus.deployments.metrics import count_requests
from pardus.deployments.names import Mode
from pardus.deployments.settings import Settings
from pardus.serve.bodies import (
    FORM_TYPES,
    content_type,
    form_fields,
    inline_image,
    parse_fields,
    parse_json,
    read_body,
)
from pardus.serve.errors import ApiError, bad_request, install_handlers
from pardus.serve.image_urls import fetch_allowed
from pardus.serve.openapi import document
from pardus.serve.schemas import (
    ERROR_RESPONSES,
    ErrorResponse,
    Health,
    Item,
    ItemsRequest,
    ItemsResponse,
    Readiness,
    SearchRequest,
    SearchResponse,
)
from pardus.serve.search import Query, SearchService
from pardus.serve.views import item_view

STATIC = Path(__file__).with_name("static")
# The page loads only its own files; previews are blob: URLs of the shopper's picture.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
NOT_FOUND = ERROR_RESPONSES | {404: {"model": ErrorResponse, "description": "No such item."}}
WRITES_OFF = {403: {"model": ErrorResponse, "description": "Item writes are off."}}
# POST /v1/items answers 422 in two shapes: every item failed (each failure listed, as on 200),
# or the request itself is invalid (the one error format).
ITEMS_FAILED = {"description": "Every item failed (each listed), or a field failed validation.",
                "content": {"application/json": {"schema": {"anyOf": [
                    {"$ref": "#/components/schemas/ItemsResponse"},
                    {"$ref": "#/components/schemas/ErrorResponse"}]}}}}
ITEMS_RESPONSES = ERROR_RESPONSES | WRITES_OFF | {422: ITEMS_FAILED}


def _service(request: Request) -> SearchService:
    return request.app.state.service


def _settings(request: Request) -> Settings:
    return request.app.state.service.settings


Service = Annotated[SearchService, Depends(_service)]
Config = Annotated[Settings, Depends(_settings)]
ItemIdPath = Annotated[str, PathParam(pattern=ID_PATTERN, description="The item id.")]


def check_key(request: Request, settings: Settings, required: bool) -> None:
    """401 unless the request carries one of the configured keys (when keys are configured
    and this route needs one). Keys are compared in constant time."""
    keys = request.app.state.keys
    if not keys or not required:
        return
    header = request.headers.get("authorization", "")
    given = header[7:].strip() if header.lower().startswith("bearer ") else (
        request.headers.get("x-api-key") or "")
    if not any(hmac.compare_digest(given.encode(), key) for key in keys):
        raise ApiError(401, "unauthorized", "a valid API key is required: send "
                       "'Authorization: Bearer <key>' or 'X-API-Key: <key>'")


def check_writes(settings: Settings) -> None:
    if not settings.serving.item_writes:
        raise ApiError(403, "writes_disabled", "this service only reads the catalogue "
                       "(PARDUS_SERVING__ITEM_WRITES=false): add items with `pardus ingest`")


router = APIRouter()


@router.get("/", include_in_schema=False)
async def page(settings: Config):
    if not settings.serving.web_page or not (STATIC / "index.html").exists():
        raise ApiError(404, "not_found", "the web page is off (PARDUS_SERVING__WEB_PAGE); "
                       "the API is under /v1 (see /docs)")
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Health:
    """Liveness: the ingress answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, tags=["health"],
            responses={503: {"model": Readiness, "description": "Not ready."}})
async def readyz(service: Service):
    """Readiness: Milvus reachable and the embedder loaded (the reranker is optional)."""
    readiness = await service.readiness()
    if readiness.ready:
        return readiness
    retry = str(service.settings.serving.retry_after_s)
    return JSONResponse(readiness.model_dump(), 503, {"Retry-After": retry})


@router.post("/v1/search", response_model=SearchResponse, tags=["search"],
             responses=ERROR_RESPONSES)
async def search(request: Request, service: Service, settings: Config) -> SearchResponse:
    """Search by text, image or both: JSON (image as base64 or a data URL) or
    multipart/form-data (the image as a file part named `image`)."""
    check_key(request, settings, settings.serving.search_requires_key)
    body = await read_body(request, settings.serving.max_request_bytes)
    kind, image = content_type(request), None
    if kind == "application/json":
        parsed = parse_json(SearchRequest, body)
    elif kind in FORM_TYPES:
        fields, image = await form_fields(request)
        parsed = parse_fields(SearchRequest, fields)
    else:
        raise ApiError(415, "unsupported_media_type", "send application/json or "
                       "multipart/form-data")
    if parsed.image is not None:
        image = inline_image(parsed.image)
    if parsed.image_url is not None:
        image = await fetch_allowed(parsed.image_url, settings.serving,
                                    settings.embedder.max_image_bytes)
    if image is None and not parsed.text.strip():
        raise bad_request("empty_query", "give a text, an image, or both", "text")
    mode = Mode(parsed.mode) if parsed.mode else None
    return await service.search(Query(parsed.text, image, parsed.k, parsed.filters,
                                      parsed.rerank, mode, parsed.weights))


@router.post("/v1/items", response_model=ItemsResponse, tags=["items"], responses=ITEMS_RESPONSES)
async def add_items(request: Request, service: Service, settings: Config):
    """Add or replace items (by id) with their images; each bad image fails alone. An id given
    twice in one request: the last one is stored."""
    check_key(request, settings, True)
    check_writes(settings)
    raw = await read_body(request, settings.serving.max_request_bytes)
    if content_type(request) != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the items as application/json")
    body = parse_json(ItemsRequest, raw)
    images = [inline_image(item.image, f"items[{i}].image") for i, item in enumerate(body.items)]
    result = await service.upsert(body.items, images)
    return JSONResponse(result.model_dump(), 200 if result.upserted else 422)


@router.get("/v1/items/{item_id}", response_model=Item, tags=["items"], responses=NOT_FOUND)
async def get_item(request: Request, item_id: ItemIdPath, service: Service,
                   settings: Config) -> Item:
    check_key(request, settings, settings.serving.search_requires_key)
    return item_view(await service.get(item_id))


@router.delete("/v1/items/{item_id}", status_code=204, tags=["items"],
               responses=NOT_FOUND | WRITES_OFF)
async def delete_item(request: Request, item_id: ItemIdPath, service: Service,
                      settings: Config) -> Response:
    check_key(request, settings, True)
    check_writes(settings)
    await service.delete(item_id)
    return Response(status_code=204)


@router.get("/v1/items/{item_id}/image", tags=["items"], response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}} | NOT_FOUND)
async def item_image(request: Request, item_id: ItemIdPath, service: Service, settings: Config,
                     size: Annotated[int | None, QueryParam(ge=32, le=1024)] = None,
                     index: Annotated[int, QueryParam(ge=0, le=7)] = 0):
    """One of the item's pictures (index 0: the main one) as a JPEG thumbnail at most
    size x size pixels (sizes are served in steps: 64, 128, 256, 512, 1024)."""
    check_key(request, settings, settings.serving.search_requires_key)
    data = await service.thumbnail(item_id, size or settings.serving.thumbnail_px, index)
    return Response(data, media_type="image/jpeg", headers={
        "Cache-Control": f"public, max-age={settings.serving.thumbnail_max_age_s}"})


def create_api(service: SearchService) -> FastAPI:
    """The API of one service: routes, the one error format, OpenAPI, metrics, CORS."""

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        await service.store.close()

    serving = service.settings.serving
    api = FastAPI(title="Pardus", version="1", lifespan=lifespan,
                  description="Multimodal product search: text, image or both; Visualized BGE + "
                              "Milvus + a vision-language reranker.")
    api.state.service = service
    api.state.keys = [key.get_secret_value().encode() for key in serving.api_keys]
    install_handlers(api)
    count_requests(api)
    if serving.cors_origins:  # off unless origins are named
        api.add_middleware(CORSMiddleware, allow_origins=serving.cors_origins,
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    if STATIC.is_dir():
        api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.include_router(router)
    document(api)
    return api
