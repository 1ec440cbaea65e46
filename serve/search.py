"""The service behind the API: query -> embed -> search -> rerank, and item writes; no Serve,
no HTTP (the models arrive as plain async callables, the store as a typed gateway). Failures
are domain errors (deployments/errors.py); serve/errors.py turns them into HTTP answers."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from pardus.deployments.caches import LruCache
from pardus.deployments.catalogue.cursors import Cursor, Cursors, search_digest
from pardus.deployments.catalogue.filters import Refinements, SearchFilters
from pardus.deployments.catalogue.gateway import StoreGateway
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import make_plan, query_kind
from pardus.deployments.catalogue.results import Ranked, arrange
from pardus.deployments.catalogue.store import Found, Picture, outdated
from pardus.deployments.embedder.images import ImageError
from pardus.deployments.embedder.queries import Embedding, EmbedQuery, PictureQuery, PictureVectors
from pardus.deployments.errors import NotFound, Unavailable
from pardus.deployments.metrics import metrics
from pardus.deployments.names import (
    FacetName,
    Mode,
    QueryKind,
    RerankOutcome,
    Sort,
    StockRule,
)
from pardus.deployments.reranker.policy import RerankPolicy
from pardus.deployments.settings import Boosts, Settings, Weights
from pardus.serve.images import ImageLibrary, image_format, snap_size
from pardus.serve.query_cache import QueryCache, model_identity
from pardus.serve.rerank_stage import Rerank, RerankStage, ms_since, within
from pardus.serve.schemas import (
    Facet,
    FacetCount,
    ItemFailure,
    ItemIn,
    ItemsResponse,
    Readiness,
    RerankInfo,
    ScoreDebug,
    SearchResponse,
    SearchResult,
)
from pardus.serve.views import image_url

log = logging.getLogger(__name__)

Embed = Callable[[EmbedQuery], Awaitable[Embedding]]
EmbedPictures = Callable[[list[PictureQuery]], Awaitable[list[PictureVectors]]]
Probe = Callable[[], Awaitable[object]]


@dataclass
class Models:
    """What the service calls: Serve deployment handles or local objects, as async callables."""

    embed: Embed
    embed_pictures: EmbedPictures
    rerank: Rerank | None = None  # None: this server does not rerank
    probes: dict[str, Probe] = field(default_factory=dict)  # readiness checks by name


@dataclass
class Query:
    text: str = ""
    image: bytes | None = None
    k: int = 10
    filters: SearchFilters | None = None
    rerank: bool = True
    mode: Mode | None = None  # None: settings.search.mode
    weights: Weights | None = None  # given: weighted fusion with these weights
    sort: Sort = Sort.RELEVANCE
    facets: tuple[FacetName, ...] = ()  # the facets to count
    refine: Refinements | None = None  # facet values picked
    boosts: Boosts | None = None  # None: settings.search.boosts
    min_relevance: float | None = None  # None: settings.search.relevance_floor
    cursor: str | None = None  # the previous page's `next`
    debug: bool = False

    @cached_property
    def picture_digest(self) -> str:
        """The picture's SHA-256 (of no bytes without one): hashed once per request for the
        query cache, the result cache and the cursor's digest."""
        return hashlib.sha256(self.image or b"").hexdigest()


# Answers worth keeping: the ranking they give is the one a repeat would get (not a
# degraded one from a reranker that timed out or failed).
CACHEABLE = {RerankOutcome.RERANKED, RerankOutcome.OFF, RerankOutcome.DISABLED,
             RerankOutcome.TOO_FEW}


def cursor_key(settings: Settings) -> bytes:
    """The key that signs page cursors: the configured secret, else one derived from the
    catalogue's name (the same on every replica either way)."""
    secret = settings.serving.cursor_secret.get_secret_value()
    return (secret or f"pardus-cursor:{settings.milvus.collection}").encode()


def _dump(model: BaseModel | None) -> Any:
    return model.model_dump(mode="json") if model is not None else None


def _not_found(item_id: str) -> NotFound:
    return NotFound(f"no item with id {item_id!r} in the catalogue", code="item_not_found")


class SearchService:
    """Plain async logic; serve/factory.py builds it, the ingress routes HTTP to it."""

    REQUIRED = ("milvus", "embedder")  # readiness; the reranker is reported, not required

    def __init__(self, settings: Settings, models: Models, store: StoreGateway,
                 images: ImageLibrary):
        self.settings, self.models, self.store, self.images = settings, models, store, images
        self.reranking = RerankStage(RerankPolicy(settings.reranker), models.rerank, images)
        self.metrics = metrics()
        serving = settings.serving
        # An item written or deleted through this replica is forgotten at once; through
        # another, it shows its new state after the max-age, as Cache-Control promises.
        self.thumbnails = LruCache(serving.thumbnail_cache_size, serving.thumbnail_max_age_s)
        # Thumbnails made here at once: a bound on memory, since one 40-Mpx picture takes
        # hundreds of MB while it is decoded.
        self.decoding = asyncio.Semaphore(serving.decode_concurrency)
        self.cursors = Cursors(cursor_key(settings))
        self.query_cache = QueryCache(int(serving.query_cache_mb * 2**20),
                                      model_identity(settings.embedder))
        # Whole answers (off unless result_cache_s > 0); writes through this replica clear it.
        self.results = (LruCache(serving.result_cache_size, serving.result_cache_s)
                        if serving.result_cache_s > 0 else None)

    # -- backends -----------------------------------------------------------------------------
    def _embedder_down(self, exc: BaseException) -> Unavailable:
        retry = self.settings.serving.retry_after_s
        if isinstance(exc, asyncio.TimeoutError):
            return Unavailable("the embedder did not answer in time; retry",
                               code="embedder_timeout", retry_after_s=retry)
        log.warning("embedder failed: %r", exc)  # a dead replica or actor: Serve's own types
        return Unavailable("the embedder is unavailable; retry", code="embedder_unavailable",
                           retry_after_s=retry)

    async def _embed(self, query: EmbedQuery, picture: str | None = None) -> Embedding:
        async def call() -> Embedding:
            try:
                return await within(self.models.embed(query),
                                    self.settings.serving.embed_timeout_s)
            except Exception as exc:
                raise self._embedder_down(exc) from None

        embedding, lookup = await self.query_cache.embed(query, call, picture)
        if self.metrics is not None:
            self.metrics.query_cache.inc(1, tags={"result": lookup.value})
        if embedding.error is not None:
            raise embedding.error
        return embedding

    # -- search ---------------------------------------------------------------------------------
    async def search(self, query: Query) -> SearchResponse:
        if self.results is None:
            return await self._search(query)
        start = time.perf_counter()
        key = (await self.store.live_version(), search_digest(
            "answer", query.text, query.picture_digest, query.k,
            _dump(query.filters), query.rerank, query.mode, _dump(query.weights), query.sort,
            query.facets, _dump(query.refine), _dump(query.boosts), query.min_relevance,
            query.cursor, query.debug))
        cached = self.results.get(key)
        if self.metrics is not None:
            self.metrics.result_cache.inc(1, tags={"result": "miss" if cached is None
                                                   else "hit"})
        if cached is not None:
            return cached.model_copy(update={"timings_ms": {
                "result_cache": round(ms_since(start), 2), "total": round(ms_since(start), 2)}})
        response = await self._search(query)
        if response.rerank.outcome in CACHEABLE:  # never a degraded answer
            self.results.put(key, response)
        return response

    async def _search(self, query: Query) -> SearchResponse:
        kind = query_kind(bool(query.text.strip()), query.image is not None)
        plan = make_plan(kind, self.settings.search, query.mode, query.weights)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        embedding = Embedding(None)
        if plan.dense_field is not None:  # a lexical search needs no vector
            embedding = await self._embed(EmbedQuery(text=query.text, image=query.image),
                                          query.picture_digest)
            timings["embed"] = ms_since(start)
        mark = time.perf_counter()
        found = await self.store.search(plan, embedding.vector, query.text,
                                        self.settings.search.window, query.filters,
                                        pictures=False)
        timings["search"] = ms_since(mark)
        digest = search_digest(
            "search", query.text, query.picture_digest,
            _dump(query.filters), plan.mode, plan.fusion, _dump(plan.weights), query.sort,
            _dump(query.refine), _dump(query.boosts), query.min_relevance)
        response = await self._page(query, plan, found, digest, timings)
        response.truncated = embedding.truncated
        timings["total"] = ms_since(start)
        response.timings_ms = {k: round(v, 2) for k, v in timings.items()}
        if self.metrics is not None:
            self.metrics.timings(timings)
        return response

    async def similar(self, item_id: str, query: Query) -> SearchResponse:
        """Products like an item, by its stored picture vector (no embedding call): itself
        left out, one hit per product, the query's filters, pages and sort as a search's."""
        timings: dict[str, float] = {}
        start = time.perf_counter()
        vectors = await self.store.vectors(item_id)
        if vectors is None:
            raise _not_found(item_id)
        plan = make_plan(QueryKind.IMAGE, self.settings.search, Mode.DENSE)
        found = await self.store.search(plan, vectors[0], "", self.settings.search.window,
                                        query.filters, exclude=item_id, pictures=False)
        timings["search"] = ms_since(start)
        digest = search_digest("similar", item_id, _dump(query.filters), query.sort,
                               _dump(query.refine), _dump(query.boosts), query.min_relevance)
        response = await self._page(replace(query, rerank=False), plan, found, digest, timings)
        timings["total"] = ms_since(start)
        response.timings_ms = {k: round(v, 2) for k, v in timings.items()}
        if self.metrics is not None:
            self.metrics.timings(timings)
        return response

    async def _page(self, query: Query, plan, found: Found, digest: str,
                    timings: dict[str, float]) -> SearchResponse:
        """The page the query asks of what the search found: cut off, boosted, refined,
        sorted, reranked when asked, with the cursor of the next page."""
        boosts = query.boosts
        asks_signals = (query.facets or query.sort is not Sort.RELEVANCE or boosts is not None
                        and (boosts.out_of_stock is not StockRule.KEEP or boosts.popularity))
        if asks_signals and found.version is not None and not found.signals:
            raise outdated(found.version)
        offset = 0
        if query.cursor is not None:
            offset = self.cursors.read(query.cursor, found.version, digest).offset
        mark = time.perf_counter()
        arranged = arrange(found.hits, plan, self.settings.search, floor=query.min_relevance,
                           boosts=query.boosts, refine=query.refine, facets=query.facets,
                           sort=query.sort, offset=offset, k=query.k)
        timings["arrange"] = ms_since(mark)
        page = await self._with_pictures(found.version, arranged.page, timings)
        hits = [entry.hit for entry in page]
        outcome = await self.reranking.run(query.text, query.image, hits, query.rerank, timings)
        if self.metrics is not None:
            self.metrics.reranked(outcome, query.image is not None)
        by_id = {entry.item.id: (offset + i, entry) for i, entry in enumerate(page, 1)}
        results = [self._result(*by_id[item_id], offset + rank, query.debug)
                   for rank, item_id in enumerate(outcome.order, start=1)]
        following = arranged.next_offset
        return SearchResponse(
            results=results, kind=plan.kind, mode=plan.mode,
            fusion=plan.fusion if plan.dense_field and plan.lexical else None,
            reason=outcome.reason, caption=outcome.caption,
            rerank=RerankInfo(outcome=outcome.outcome, model_calls=outcome.model_calls,
                              caption_cached=outcome.caption_cached, repairs=outcome.repairs),
            sort=query.sort, total=arranged.total, relevant=arranged.relevant,
            window=len(found.hits), currency=self.settings.serving.currency,
            next=None if following is None else self.cursors.write(
                Cursor(following, found.version or "", digest)),
            facets=[Facet(name=name, values=[FacetCount(value=v.value, count=v.count,
                                                        selected=v.selected) for v in values])
                    for name, values in arranged.facets.items()],
            timings_ms={})

    async def _with_pictures(self, version: str | None, page: list[Ranked],
                             timings: dict[str, float]) -> list[Ranked]:
        """The page's entries with their items' pictures (the window was read without them;
        the time counts as search)."""
        if version is None or not page:
            return page
        mark = time.perf_counter()
        hits = {hit.item.id: hit
                for hit in await self.store.with_pictures(version, [e.hit for e in page])}
        timings["search"] = timings.get("search", 0.0) + ms_since(mark)
        return [replace(entry, hit=hits[entry.item.id]) for entry in page
                if entry.item.id in hits]

    @staticmethod
    def _result(position: int, entry: Ranked, rank: int, debug: bool) -> SearchResult:
        hit, item = entry.hit, entry.item
        return SearchResult(
            id=item.id, score=hit.score, retrieval_rank=position, rank=rank,
            title=item.title, category=item.category, brand=item.brand,
            price=CatalogueItem.known(item.price), rating=CatalogueItem.known(item.rating),
            image_index=hit.image_index, image_count=len(item.images),
            image_url=image_url(item.id, hit.image_index), in_stock=item.in_stock,
            popularity=item.popularity, added_at=item.added_at,
            debug=ScoreDebug(score=hit.score, relevance=round(entry.relevance, 6),
                             boost=round(entry.boost, 6), final=round(entry.final, 6))
            if debug else None)

    # -- items ----------------------------------------------------------------------------------
    async def upsert(self, items: list[ItemIn], images: list[bytes]) -> ItemsResponse:
        """Embed and store items (one picture each); a bad image fails its item alone.
        Backend errors fail all."""
        failed: list[ItemFailure] = []

        def fail(item: ItemIn, exc: ImageError) -> None:
            failed.append(ItemFailure(id=item.id, code=exc.code, message=exc.message))

        todo = []  # (item, bytes, format) of the items whose picture header is fine
        for item, data in zip(items, images):
            try:  # the header only: the embedder decodes the picture, once
                todo.append((item, data, await asyncio.to_thread(image_format, data,
                                                                 self.images.limits)))
            except ImageError as exc:
                fail(item, exc)
        vectors = await self._embed_pictures([PictureQuery(d, i.title) for i, d, _ in todo])
        embedded = []
        for (item, data, kind), found in zip(todo, vectors):
            if found.error is not None:
                fail(item, found.error)
            else:
                embedded.append((item, data, kind, found))
        references = await asyncio.gather(*(  # the uploads, side by side
            asyncio.to_thread(self.images.write_upload, data, kind)
            for _, data, kind, _ in embedded))
        now = int(time.time())
        pictures = [Picture(CatalogueItem(id=item.id, title=item.title, category=item.category,
                                          brand=item.brand, price=item.price,
                                          rating=item.rating, images=(reference,),
                                          ingested_at=now, in_stock=item.in_stock,
                                          popularity=item.popularity,
                                          added_at=item.added_at or now),
                            0, found.image, found.pair)
                    for (item, _, _, found), reference in zip(embedded, references)]
        if pictures:
            await self.store.upsert(pictures)
        for picture in pictures:
            self.thumbnails.forget(picture.item.id)
        self._changed()
        return ItemsResponse(upserted=[p.item.id for p in pictures], failed=failed)

    async def _embed_pictures(self, pictures: list[PictureQuery]) -> list[PictureVectors]:
        if not pictures:
            return []
        try:
            return await within(self.models.embed_pictures(pictures),
                                self.settings.serving.embed_timeout_s)
        except Exception as exc:  # a timeout, a dead replica: nothing was stored
            raise self._embedder_down(exc) from None

    async def get(self, item_id: str) -> CatalogueItem:
        items = await self.store.get([item_id])
        if not items:
            raise _not_found(item_id)
        return items[0]

    async def patch(self, item_id: str, changes: dict[str, Any]) -> CatalogueItem:
        """Change an item's attributes (price, rating, stock, popularity, when added) on every
        row of it, without embedding again."""
        updated = await self.store.update_attributes({item_id: changes})
        if not updated:
            raise _not_found(item_id)
        self._changed()
        return updated[0]

    async def delete(self, item_id: str) -> None:
        if not await self.store.delete([item_id]):
            raise _not_found(item_id)
        self.thumbnails.forget(item_id)
        self._changed()

    def _changed(self) -> None:
        """The catalogue changed through this replica: no cached answer may show it as it
        was (other replicas' caches expire within result_cache_s)."""
        if self.results is not None:
            self.results.clear()

    async def thumbnail(self, item_id: str, size: int, index: int = 0) -> bytes:
        """A thumbnail of one of the item's pictures, from the cache before any store call."""
        key = (item_id, index, snap_size(size))
        cached = self.thumbnails.get(key)
        if cached is not None:
            return cached
        item = await self.get(item_id)
        if not 0 <= index < len(item.images):
            raise NotFound(f"item {item_id!r} has {len(item.images)} picture(s): index {index} "
                           "does not exist", code="image_not_found", field="index")
        try:
            async with self.decoding:
                data = await asyncio.to_thread(self.images.thumbnail, item.images[index], key[2])
            self.thumbnails.put(key, data)
            return data
        except ImageError as exc:
            raise NotFound(f"the image of item {item_id!r} cannot be read: {exc.message}",
                           code="image_not_found") from None

    # -- readiness ------------------------------------------------------------------------------
    async def _probe(self, probe: Probe) -> str:
        try:
            await within(probe(), self.settings.serving.readiness_timeout_s)
            return "ok"
        except Exception as exc:  # readiness reports every failure (details: the log)
            log.warning("readiness: a probe failed: %r", exc)
            return "unavailable"

    async def readiness(self) -> Readiness:
        """Milvus reachable and the embedder answering; the reranker is reported only."""
        checks = {"milvus": await self.store.check(self.settings.serving.readiness_timeout_s)}
        for name, probe in self.models.probes.items():
            checks[name] = await self._probe(probe)
        ready = all(checks.get(name) == "ok" for name in self.REQUIRED)
        return Readiness(ready=ready, checks=checks)
