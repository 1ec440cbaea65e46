"""The service behind the API: query -> embed -> search -> rerank, and item writes; no Serve,
no HTTP (the models arrive as plain async callables, the store as a typed gateway)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import quote

import numpy as np

from deployments.catalogue.filters import SearchFilters
from deployments.catalogue.gateway import StoreGateway
from deployments.catalogue.items import CatalogueItem
from deployments.catalogue.store import Hit, StoreError, StoreUnavailable
from deployments.embedder.images import ImageError
from deployments.embedder.queries import EmbedQuery, Embedding
from deployments.metrics import metrics
from deployments.reranker.policy import RerankOutcome, RerankPolicy, RerankRequest, RerankResult
from deployments.settings import Settings
from serve.errors import ApiError
from serve.images import ImageLibrary, image_format
from serve.schemas import (Item, ItemFailure, ItemIn, ItemsResponse, Readiness, RerankInfo,
                           SearchResponse, SearchResult)

log = logging.getLogger(__name__)
T = TypeVar("T")

Embed = Callable[[EmbedQuery], Awaitable[Embedding]]
Rerank = Callable[[RerankRequest], Awaitable[RerankResult]]
Probe = Callable[[], Awaitable[object]]


@dataclass
class Models:
    """What the service calls: Serve deployment handles or local objects, as async callables."""

    embed: Embed
    rerank: Rerank | None = None  # None: this server does not rerank
    probes: dict[str, Probe] = field(default_factory=dict)  # readiness checks by name


@dataclass
class Query:
    text: str = ""
    image: bytes | None = None
    k: int = 10
    filters: SearchFilters | None = None
    rerank: bool = True


def image_error(error: ImageError, field: str = "image") -> ApiError:
    status = 413 if error.code == "too_large" else 400
    return ApiError(status, f"image_{error.code}", error.message, field)


def image_url(item_id: str) -> str:
    return f"/v1/items/{quote(item_id, safe='')}/image"


def item_view(item: CatalogueItem) -> Item:
    return Item(id=item.id, title=item.title, category=item.category,
                price=CatalogueItem.known(item.price), rating=CatalogueItem.known(item.rating),
                image_url=image_url(item.id), ingested_at=item.ingested_at)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


class SearchService:
    """Plain async logic; serve/factory.py builds it, the ingress routes HTTP to it."""

    REQUIRED = ("milvus", "embedder")  # readiness; the reranker is reported, not required

    def __init__(self, settings: Settings, models: Models, store: StoreGateway,
                 images: ImageLibrary):
        self.settings, self.models, self.store, self.images = settings, models, store, images
        self.policy = RerankPolicy(settings.reranker)
        self.metrics = metrics()

    # -- backends -----------------------------------------------------------------------------
    async def _stored(self, call: Awaitable[T]) -> T:
        """A store call, its failures as the API's errors."""
        try:
            return await call
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", f"{exc}; retry shortly",
                           retry_after=self.settings.serving.retry_after_s) from None
        except StoreError as exc:
            raise ApiError(503, "store_error", str(exc),
                           retry_after=self.settings.serving.retry_after_s) from None

    async def _embed(self, query: EmbedQuery) -> Embedding:
        serving = self.settings.serving
        try:
            embedding = await asyncio.wait_for(self.models.embed(query), serving.embed_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, "embedder_timeout", "the embedder did not answer in time; retry",
                           retry_after=serving.retry_after_s) from None
        except Exception as exc:  # a dead replica or actor: Serve raises its own types
            log.warning("embedder failed: %r", exc)
            raise ApiError(503, "embedder_unavailable", "the embedder is unavailable; retry",
                           retry_after=serving.retry_after_s) from None
        if embedding.error is not None:
            raise image_error(embedding.error)
        return embedding

    def _pictures(self, hits: list[Hit]) -> list[tuple[str, bytes | None]]:
        out = []
        for hit in hits:
            try:
                out.append((hit.item.id, self.images.read(hit.item.image)))
            except ImageError:
                out.append((hit.item.id, None))  # a grey cell: the reranker still ranks it
        return out

    async def _rerank(self, query: Query, hits: list[Hit], timings: dict) -> RerankResult:
        """Every hit's id in the final order; never raises (retrieval order instead)."""
        ids = [hit.item.id for hit in hits]
        skip = self.policy.skip(query.rerank, self.models.rerank is not None, len(hits))
        if skip is not None:
            return RerankResult.kept(ids, skip)
        head, tail = self.policy.split(hits)
        start = time.perf_counter()
        candidates = await asyncio.to_thread(self._pictures, head)
        timings["load_images"] = _ms(start)
        head_ids, start = [hit.item.id for hit in head], time.perf_counter()
        request = RerankRequest(query.text, query.image, candidates)
        try:
            result = await asyncio.wait_for(self.models.rerank(request), self.policy.deadline_s)
        except asyncio.TimeoutError:
            result = RerankResult.kept(head_ids, RerankOutcome.TIMEOUT)
        except Exception as exc:  # down or restarting: degrade, flagged
            log.warning("reranker unavailable: %r", exc)
            result = RerankResult.kept(head_ids, RerankOutcome.UNAVAILABLE)
        timings["rerank"] = _ms(start)
        if result.model_calls:
            timings["rerank_model"] = result.seconds * 1000
        return self.policy.finish(result, head_ids, [hit.item.id for hit in tail])

    # -- search ---------------------------------------------------------------------------------
    async def search(self, query: Query) -> SearchResponse:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        embedding = await self._embed(EmbedQuery(text=query.text, image=query.image))
        timings["embed"] = _ms(start)
        mark = time.perf_counter()
        hits = await self._stored(self.store.search(embedding.vector, query.k, query.filters))
        timings["search"] = _ms(mark)
        outcome = await self._rerank(query, hits, timings)
        timings["total"] = _ms(start)
        if self.metrics is not None:
            self.metrics.timings(timings)
            self.metrics.reranked(outcome, query.image is not None)
        by_id = {hit.item.id: (rank, hit) for rank, hit in enumerate(hits, start=1)}
        results = []
        for rank, item_id in enumerate(outcome.order, start=1):
            retrieval_rank, hit = by_id[item_id]
            view = item_view(hit.item)
            results.append(SearchResult(
                id=view.id, score=hit.score, retrieval_rank=retrieval_rank, rank=rank,
                title=view.title, category=view.category, price=view.price, rating=view.rating,
                image_url=view.image_url))
        return SearchResponse(
            results=results, reranked=outcome.reranked, rerank_note=outcome.note,
            reason=outcome.reason, caption=outcome.caption, truncated=embedding.truncated,
            rerank=RerankInfo(outcome=outcome.outcome.value, model_calls=outcome.model_calls,
                              caption_cached=outcome.caption_cached, repairs=outcome.repairs),
            timings_ms={k: round(v, 2) for k, v in timings.items()})

    # -- items ----------------------------------------------------------------------------------
    async def _prepare(self, item: ItemIn, data: bytes) -> tuple[CatalogueItem, np.ndarray]:
        try:
            kind = await asyncio.to_thread(image_format, data, self.images.limits)
        except ImageError as exc:
            raise image_error(exc, field=f"items[{item.id}].image") from None
        embedding = await self._embed(EmbedQuery(text="", image=data))
        reference = await asyncio.to_thread(self.images.write_upload, data, kind)
        return CatalogueItem(
            id=item.id, title=item.title, category=item.category, price=item.price,
            rating=item.rating, image=reference, ingested_at=int(time.time())), embedding.vector

    async def upsert(self, items: list[ItemIn], images: list[bytes]) -> ItemsResponse:
        """Embed and store items; a bad image fails its item alone. Backend errors fail all."""
        prepared = await asyncio.gather(*[self._prepare(i, d) for i, d in zip(items, images)],
                                        return_exceptions=True)
        good, failed = [], []
        for item, outcome in zip(items, prepared):
            if isinstance(outcome, ApiError) and outcome.status < 500:
                failed.append(ItemFailure(id=item.id, code=outcome.code, message=outcome.message))
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                good.append(outcome)
        if good:
            await self._stored(self.store.upsert([g[0] for g in good],
                                                 np.stack([g[1] for g in good])))
        return ItemsResponse(upserted=[g[0].id for g in good], failed=failed)

    async def get(self, item_id: str) -> CatalogueItem:
        items = await self._stored(self.store.get([item_id]))
        if not items:
            raise ApiError(404, "item_not_found", f"no item with id {item_id!r} in the catalogue")
        return items[0]

    async def delete(self, item_id: str) -> None:
        await self.get(item_id)  # 404 when absent
        await self._stored(self.store.delete([item_id]))

    async def thumbnail(self, item_id: str, size: int) -> bytes:
        item = await self.get(item_id)
        try:
            return await asyncio.to_thread(self.images.thumbnail, item.image, size)
        except ImageError as exc:
            raise ApiError(404, "image_not_found",
                           f"the image of item {item_id!r} cannot be read: {exc.message}") from None

    # -- readiness ------------------------------------------------------------------------------
    async def _probe(self, probe: Probe) -> str:
        try:
            await asyncio.wait_for(probe(), self.settings.serving.readiness_timeout_s)
            return "ok"
        except Exception as exc:  # readiness reports every failure
            return f"unavailable: {type(exc).__name__}"

    async def readiness(self) -> Readiness:
        """Milvus reachable and the embedder answering; the reranker is reported only."""
        checks = {"milvus": await self.store.check(self.settings.serving.readiness_timeout_s)}
        for name, probe in self.models.probes.items():
            checks[name] = await self._probe(probe)
        ready = all(checks.get(name) == "ok" for name in self.REQUIRED)
        return Readiness(ready=ready, checks=checks)
