"""The HTTP API: routes that hand work to SearchService; the caller checks are dependencies.

`create_api` builds one FastAPI app per service (a Serve replica, a test), so per-replica
settings such as CORS never touch a module-level object.
"""

from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Body, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi import Query as QueryParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from pardus.deployments.catalogue.filters import parse_filters
from pardus.deployments.catalogue.items import ID_PATTERN, MAX_IMAGES
from pardus.deployments.errors import BadQuery, Forbidden, NotFound, Unauthorized
from pardus.serve.bodies import (
    BodyLimit,
    BodyTimeout,
    SearchBody,
    inline_image,
    json_only,
    search_body,
)
from pardus.serve.counting import RequestCounter
from pardus.serve.errors import install_handlers
from pardus.serve.image_urls import fetch_allowed
from pardus.serve.images import THUMBNAIL_SIZES
from pardus.serve.openapi import search_request_body
from pardus.serve.schemas import (
    ERROR_RESPONSES,
    MAX_K,
    ErrorResponse,
    Health,
    Item,
    ItemPatch,
    ItemsRequest,
    ItemsResponse,
    Readiness,
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
CONFLICT = {409: {"model": ErrorResponse, "description": "The catalogue's version predates "
                                                         "these fields: ingest a new one."}}
WRITES_OFF = {403: {"model": ErrorResponse, "description": "Item writes are off."}}
# POST /v1/items answers 422 in two shapes: every item failed (each failure listed, as on 200),
# or the request itself is invalid (the one error format).
ITEMS_FAILED = {"description": "Every item failed (each listed), or a field failed validation.",
                "content": {"application/json": {"schema": {"anyOf": [
                    {"$ref": "#/components/schemas/ItemsResponse"},
                    {"$ref": "#/components/schemas/ErrorResponse"}]}}}}
ITEMS_RESPONSES = ERROR_RESPONSES | WRITES_OFF | {422: ITEMS_FAILED}


# -- dependencies -----------------------------------------------------------------------------
def _service(request: Request) -> SearchService:
    return request.app.state.service


class _Bearer(HTTPBearer):
    """`Authorization: Bearer <key>` with the key as sent: FastAPI's HTTPBearer strips the
    credentials. The scheme's name is case-insensitive (RFC 9110 §11.1), one or more spaces
    follow it (§11.4), and the rest is the key."""

    async def __call__(self, request: Request) -> HTTPAuthorizationCredentials | None:
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        credentials = credentials.lstrip(" ")
        if scheme.lower() != "bearer" or not credentials:
            return None
        return HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)


Service = Annotated[SearchService, Depends(_service)]
ItemIdPath = Annotated[str, PathParam(pattern=ID_PATTERN, description="The item id.")]
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_Bearer(
    scheme_name="HTTPBearer", auto_error=False, description="An API key as a bearer token."))]
KeyHeader = Annotated[str | None, Depends(APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key."))]


def _check_key(request: Request, bearer: Bearer, header: KeyHeader, required: bool) -> None:
    """Unauthorized unless the request carries one of the configured keys (when keys are
    configured and the route needs one): the bytes sent, compared in constant time with
    nothing trimmed (the server's HTTP parser drops spaces and tabs at a header's ends)."""
    keys = request.app.state.keys
    if not keys or not required:
        return
    # Starlette decodes headers as Latin-1: encoding them back gives the bytes sent.
    given = (bearer.credentials if bearer else header or "").encode("latin-1")
    if not any(hmac.compare_digest(given, key) for key in keys):
        raise Unauthorized("a valid API key is required: send 'Authorization: Bearer <key>' or "
                           "'X-API-Key: <key>'")


async def reader(request: Request, service: Service, bearer: Bearer, header: KeyHeader) -> None:
    """Searches and item reads: a key when the service says so (search_requires_key)."""
    _check_key(request, bearer, header, service.settings.serving.search_requires_key)


async def writer(request: Request, bearer: Bearer, header: KeyHeader) -> None:
    """Item writes: a key whenever keys are configured."""
    _check_key(request, bearer, header, True)


async def writes_on(service: Service) -> None:
    if not service.settings.serving.item_writes:
        raise Forbidden("this service only reads the catalogue (PARDUS_SERVING__ITEM_WRITES="
                        "false): add items with `pardus ingest`", code="writes_disabled")


READ = [Depends(reader)]
WRITE = [Depends(writer), Depends(writes_on)]


# -- routes -----------------------------------------------------------------------------------
router = APIRouter()


@router.get("/", include_in_schema=False)
async def page(service: Service):
    if not service.settings.serving.web_page or not (STATIC / "index.html").exists():
        raise NotFound("the web page is off (PARDUS_SERVING__WEB_PAGE); the API is under /v1 "
                       "(see /docs)")
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
             responses=ERROR_RESPONSES, dependencies=READ,
             openapi_extra=search_request_body())
async def search(service: Service,
                 body: Annotated[SearchBody, Depends(search_body)]) -> SearchResponse:
    """Search by text, image or both: JSON (image as base64 or a data URL) or
    multipart/form-data (the image as a file part named `image`)."""
    asked, image = body.request, body.image
    if asked.image_url is not None:
        settings = service.settings
        image = await fetch_allowed(asked.image_url, settings.serving,
                                    settings.embedder.max_image_bytes)
    if image is None and not asked.text.strip():
        raise BadQuery("give a text, an image, or both", code="empty_query", field="text")
    return await service.search(Query(
        asked.text, image, asked.k, asked.filters, asked.rerank, asked.mode, asked.weights,
        asked.sort, tuple(asked.facets), asked.refine, asked.boosts, asked.min_relevance,
        asked.cursor, asked.debug))


@router.post("/v1/items", response_model=ItemsResponse, tags=["items"], responses=ITEMS_RESPONSES,
             dependencies=[*WRITE, Depends(json_only)])
async def add_items(service: Service, body: Annotated[ItemsRequest, Body()]):
    """Add or replace items (by id) with their images; each bad image fails alone. An id given
    twice in one request: the last one is stored."""
    images = [inline_image(item.image, f"items[{i}].image") for i, item in enumerate(body.items)]
    result = await service.upsert(body.items, images)
    return JSONResponse(result.model_dump(), 200 if result.upserted else 422)


@router.get("/v1/items/{item_id}", response_model=Item, tags=["items"], responses=NOT_FOUND,
            dependencies=READ)
async def get_item(item_id: ItemIdPath, service: Service) -> Item:
    return item_view(await service.get(item_id), service.settings.serving.currency)


@router.patch("/v1/items/{item_id}", response_model=Item, tags=["items"],
              responses=NOT_FOUND | WRITES_OFF | CONFLICT,
              dependencies=[*WRITE, Depends(json_only)])
async def patch_item(item_id: ItemIdPath, service: Service,
                     body: Annotated[ItemPatch, Body()]) -> Item:
    """Change an item's price, rating, stock, popularity or when it was added, on every
    picture of it, without embedding it again."""
    item = await service.patch(item_id, body.changes())
    return item_view(item, service.settings.serving.currency)


@router.get("/v1/items/{item_id}/similar", response_model=SearchResponse, tags=["items"],
            responses=NOT_FOUND, dependencies=READ)
async def similar_items(
    item_id: ItemIdPath, service: Service,
    k: Annotated[int, QueryParam(ge=1, le=MAX_K)] = 10,
    category: Annotated[list[str] | None, QueryParam(
        max_length=50, description="Only these categories (repeatable).")] = None,
    price_min: Annotated[float | None, QueryParam(ge=0)] = None,
    price_max: Annotated[float | None, QueryParam(ge=0)] = None,
    rating_min: Annotated[float | None, QueryParam(ge=0, le=5)] = None,
    cursor: Annotated[str | None, QueryParam(max_length=1024)] = None,
    debug: bool = False,
) -> SearchResponse:
    """Products like this one, by its stored picture (no embedding call): itself left out,
    one per product, the filters applied; `next` pages on like a search's."""
    filters = parse_filters({name: value for name, value in (
        ("categories", category), ("price_min", price_min), ("price_max", price_max),
        ("rating_min", rating_min)) if value is not None} or None)
    return await service.similar(item_id, Query(k=k, filters=filters, cursor=cursor,
                                                debug=debug))


@router.delete("/v1/items/{item_id}", status_code=204, tags=["items"],
               responses=NOT_FOUND | WRITES_OFF, dependencies=WRITE)
async def delete_item(item_id: ItemIdPath, service: Service) -> Response:
    await service.delete(item_id)
    return Response(status_code=204)


@router.get("/v1/items/{item_id}/image", tags=["items"], response_class=Response,
            responses={200: {"content": {"image/jpeg": {}}}} | NOT_FOUND, dependencies=READ)
async def item_image(
    item_id: ItemIdPath, service: Service,
    size: Annotated[int | None, QueryParam(ge=32, le=THUMBNAIL_SIZES[-1])] = None,
    index: Annotated[int, QueryParam(ge=0, le=MAX_IMAGES - 1)] = 0,
):
    """One of the item's pictures (index 0: the main one) as a JPEG thumbnail at most
    size x size pixels (sizes are served in steps: 64, 128, 256, 512, 1024)."""
    serving = service.settings.serving
    data = await service.thumbnail(item_id, size or serving.thumbnail_px, index)
    return Response(data, media_type="image/jpeg", headers={
        "Cache-Control": f"public, max-age={serving.thumbnail_max_age_s}"})


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
    install_handlers(api, serving.retry_after_s)
    api.add_middleware(BodyTimeout, timeout_s=serving.body_timeout_s)  # inside the counter
    api.add_middleware(RequestCounter)
    api.add_middleware(BodyLimit, limit=serving.max_request_bytes)
    if serving.cors_origins:  # off unless origins are named
        api.add_middleware(CORSMiddleware, allow_origins=serving.cors_origins,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"])
    if STATIC.is_dir():
        api.mount("/static", StaticFiles(directory=STATIC), name="static")
    api.include_router(router)
    return api
