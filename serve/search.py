"""The service behind the API: query -> embed -> search -> rerank, and item writes; no HTTP."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

import numpy as np

from deployments.embedder.images import ImageError, ImageLimits
from deployments.catalogue.filters import SearchFilters
from deployments.settings import Settings
from deployments.catalogue.items import UNKNOWN, CatalogueItem
from deployments.catalogue.store import Hit, StoreError, StoreUnavailable
from deployments.embedder.queries import EmbedQuery, Embedding
from serve.errors import ApiError
from deployments.catalogue.gateway import StoreGateway
from serve.images import ImageLibrary, image_format
from deployments.metrics import metrics
from serve.schemas import Item, ItemFailure, ItemIn, ItemsResponse, SearchResponse, SearchResult

log = logging.getLogger(__name__)

Embed = Callable[[EmbedQuery], Awaitable[Embedding]]
Rerank = Callable[[str, bytes | None, list[tuple[str, bytes | None]]], Awaitable[dict]]


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
    return Item(id=item.id, title=item.title, category=item.category, price=CatalogueItem.known(item.price),
                rating=CatalogueItem.known(item.rating), image_url=image_url(item.id),
                ingested_at=item.ingested_at)


class SearchService:
    """Plain async logic; the Serve ingress wires it to deployment handles and HTTP."""

    def __init__(self, settings: Settings, embed: Embed, rerank: Rerank | None,
                 store: StoreGateway, images: ImageLibrary):
        self.settings, self.embed, self.rerank = settings, embed, rerank
        self.store, self.images = store, images
        self.limits = ImageLimits(settings.embedder.max_image_pixels,
                                  settings.embedder.max_image_bytes)
        self.metrics = metrics()
        # The reranker stops itself at reranker.timeout_s; past this grace it is presumed stuck.
        self.rerank_grace_s = 5.0

    # -- helpers ------------------------------------------------------------------------------
    async def _store(self, method: str, *args):
        try:
            return await self.store.call(method, *args)
        except StoreUnavailable as exc:
            raise ApiError(503, "store_unavailable", f"{exc}; retry shortly",
                           retry_after=self.settings.serving.retry_after_s) from None
        except StoreError as exc:
            raise ApiError(503, "store_error", str(exc),
                           retry_after=self.settings.serving.retry_after_s) from None

    async def _embed(self, query: EmbedQuery) -> Embedding:
        try:
            embedding = await asyncio.wait_for(self.embed(query),
                                               self.settings.serving.embed_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, "embedder_timeout", "the embedder did not answer in time; retry",
                           retry_after=self.settings.serving.retry_after_s) from None
        except Exception as exc:  # a dead replica or actor: Serve raises its own types
            log.warning("embedder failed: %r", exc)
            raise ApiError(503, "embedder_unavailable", "the embedder is unavailable; retry",
                           retry_after=self.settings.serving.retry_after_s) from None
        if embedding.error is not None:
            raise image_error(embedding.error)
        return embedding

    def _load_images(self, hits: list[Hit]) -> list[tuple[str, bytes | None]]:
        """Pictures of the head the reranker looks at (max_candidates); the tail keeps its
        retrieval order, so its pictures are not read or shipped."""
        out = []
        for rank, hit in enumerate(hits):
            data = None
            if rank < self.settings.reranker.max_candidates:
                try:
                    data = self.images.read(hit.item.image)
                except ImageError:
                    pass  # a grey cell: the reranker still ranks it
            out.append((hit.item.id, data))
        return out

    async def _rerank(self, query: Query, hits: list[Hit], timings: dict) -> dict:
        """{order, reranked, note, reason, caption}; never raises (retrieval order instead)."""
        fallback = {"order": [h.item.id for h in hits], "reranked": False, "reason": "",
                    "caption": None}
        if not query.rerank:
            return {**fallback, "note": "not asked for (rerank=false)", "outcome": "off"}
        if self.rerank is None:
            return {**fallback, "note": "the reranker is disabled on this server",
                    "outcome": "disabled"}
        if len(hits) < 2:
            return {**fallback, "note": "fewer than two results: nothing to rerank",
                    "outcome": "off"}
        start = time.perf_counter()
        candidates = await asyncio.to_thread(self._load_images, hits)
        timings["load_images"] = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        try:
            result = await asyncio.wait_for(self.rerank(query.text, query.image, candidates),
                                            self.settings.reranker.timeout_s + self.rerank_grace_s)
        except Exception as exc:  # down, restarting or stuck: degrade, flagged
            log.warning("reranker failed: %r", exc)
            return {**fallback, "note": "the reranker is unavailable: retrieval order",
                    "outcome": "unavailable"}
        finally:
            timings["rerank"] = (time.perf_counter() - start) * 1000
        if sorted(result.get("order") or []) != sorted(fallback["order"]):  # never trust blindly
            log.error("reranker returned an order that is not a permutation: %r", result)
            return {**fallback, "note": "the reranker's answer was unusable: retrieval order",
                    "outcome": "fallback"}
        note = None if result["reranked"] else (result.get("fallback") or "retrieval order kept")
        return {"order": result["order"], "reranked": result["reranked"], "note": note,
                "reason": result.get("reason", ""), "caption": result.get("caption"),
                "outcome": "reranked" if result["reranked"] else "fallback"}

    # -- search ---------------------------------------------------------------------------------
    async def search(self, query: Query) -> SearchResponse:
        timings: dict[str, float] = {}
        start = time.perf_counter()
        embedding = await self._embed(EmbedQuery(text=query.text, image=query.image))
        timings["embed"] = (time.perf_counter() - start) * 1000
        mark = time.perf_counter()
        hits: list[Hit] = await self._store("search", embedding.vector, query.k, query.filters)
        timings["search"] = (time.perf_counter() - mark) * 1000
        outcome = await self._rerank(query, hits, timings)
        by_id = {hit.item.id: (rank, hit) for rank, hit in enumerate(hits, start=1)}
        results = []
        for rank, item_id in enumerate(outcome["order"], start=1):
            retrieval_rank, hit = by_id[item_id]
            item = hit.item
            results.append(SearchResult(
                id=item.id, score=hit.score, retrieval_rank=retrieval_rank, rank=rank,
                title=item.title, category=item.category, price=CatalogueItem.known(item.price),
                rating=CatalogueItem.known(item.rating), image_url=image_url(item.id)))
        timings["total"] = (time.perf_counter() - start) * 1000
        if self.metrics is not None:
            self.metrics.timings(timings)
            self.metrics.rerank_outcome(outcome["outcome"])
        return SearchResponse(results=results, reranked=outcome["reranked"],
                              rerank_note=outcome["note"], reason=outcome["reason"],
                              caption=outcome["caption"], truncated=embedding.truncated,
                              timings_ms={k: round(v, 2) for k, v in timings.items()})

    # -- items ----------------------------------------------------------------------------------
    async def _prepare(self, item: ItemIn, data: bytes) -> tuple[CatalogueItem, np.ndarray]:
        try:
            kind = await asyncio.to_thread(image_format, data, self.limits)
        except ImageError as exc:
            raise image_error(exc, field=f"items[{item.id}].image") from None
        embedding = await self._embed(EmbedQuery(text="", image=data))
        reference = await asyncio.to_thread(self.images.write_upload, data, kind)
        return CatalogueItem(
            id=item.id, title=item.title, category=item.category,
            price=UNKNOWN if item.price is None else item.price,
            rating=UNKNOWN if item.rating is None else item.rating,
            image=reference, ingested_at=int(time.time())), embedding.vector

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
            await self._store("upsert", [g[0] for g in good], np.stack([g[1] for g in good]))
        return ItemsResponse(upserted=[g[0].id for g in good], failed=failed)

    async def get(self, item_id: str) -> CatalogueItem:
        items = await self._store("get", [item_id])
        if not items:
            raise ApiError(404, "item_not_found", f"no item with id {item_id!r} in the catalogue")
        return items[0]

    async def delete(self, item_id: str) -> None:
        await self.get(item_id)  # 404 when absent
        await self._store("delete", [item_id])

    async def thumbnail(self, item_id: str, size: int) -> bytes:
        item = await self.get(item_id)
        try:
            return await asyncio.to_thread(self.images.thumbnail, item.image, size)
        except ImageError as exc:
            raise ApiError(404, "image_not_found",
                           f"the image of item {item_id!r} cannot be read: {exc.message}") from None
