"""What an evaluation searches: the running service over HTTP, or the search service in process.

Both send the same typed request (serve.schemas.SearchRequest over HTTP, serve.search.Query in
process), read the same SearchResponse and fail with the same domain errors, so their answers
compare one to one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field
from typing import Protocol

from pardus.deployments.errors import BadQuery, NotFound, PardusError, Unauthorized
from pardus.deployments.names import Fusion, Mode, RerankOutcome, StockRule
from pardus.deployments.settings import Boosts, Settings, Weights
from pardus.evaluation.queries import EvalQuery
from pardus.serve.client import PardusClient
from pardus.serve.factory import build_search_service, local_models
from pardus.serve.schemas import SearchRequest, SearchResponse
from pardus.serve.search import Query

ID_CHUNK = 256  # ids per catalogue lookup


@dataclass(frozen=True)
class Ask:
    """One search of a run: the mode, fusion weights (None: the server's) and rerank. An
    evaluation measures the relevance order itself: no cut-off, no merchandising."""

    mode: Mode
    weights: Weights | None
    rerank: bool
    k: int
    min_relevance: float = 0.0
    boosts: Boosts = field(default_factory=lambda: Boosts(out_of_stock=StockRule.KEEP))


@dataclass(frozen=True)
class Answer:
    ids: list[str]  # best first, as returned
    seconds: float  # the call, as the caller waits for it
    fusion: Fusion | None
    outcome: RerankOutcome
    repaired: bool = False  # the reranker's answer needed repairs (missing or invented ids)

    @property
    def reranked(self) -> bool:
        return self.outcome is RerankOutcome.RERANKED


class TargetError(RuntimeError):
    """The target cannot be searched (down, refusing us): nothing to measure."""


def _failed(query: EvalQuery, error: PardusError, target: str) -> Exception:
    """A refused query is that query's problem; any other failure stops the run."""
    if isinstance(error, Unauthorized):
        return TargetError(f"{target} needs an API key: pass --api-key (or set PARDUS_API_KEY)")
    if isinstance(error, BadQuery):
        return QueryRefused(query, error.message)
    return TargetError(f"{target}: {error.message}")


class QueryRefused(ValueError):
    """The service refused one query of the set (its message says why)."""

    def __init__(self, query: EvalQuery, message: str):
        super().__init__(f"the service refused query {query.id!r}: {message}")
        self.query = query


class Target(Protocol):
    name: str

    async def search(self, query: EvalQuery, ask: Ask) -> Answer: ...
    async def missing(self, ids: list[str]) -> set[str]: ...
    async def catalogue_size(self) -> int | None: ...
    async def close(self) -> None: ...


def _answer(response: SearchResponse, seconds: float) -> Answer:
    return Answer([r.id for r in response.results], seconds, response.fusion,
                  response.rerank.outcome, bool(response.rerank.repairs))


class InProcessTarget:
    """serve.search.SearchService in this process (the embedder loaded here, no reranker)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = f"in process: {settings.milvus.collection!r} at {settings.milvus.uri}"
        self.service = build_search_service(settings, local_models(settings))

    async def search(self, query: EvalQuery, ask: Ask) -> Answer:
        image = await asyncio.to_thread(query.image.read_bytes) if query.image else None
        start = time.perf_counter()
        try:
            response = await self.service.search(Query(
                query.text, image, ask.k, None, ask.rerank, ask.mode, ask.weights,
                boosts=ask.boosts, min_relevance=ask.min_relevance))
        except PardusError as exc:
            raise _failed(query, exc, self.name) from None
        return _answer(response, time.perf_counter() - start)

    async def missing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        try:
            for start in range(0, len(ids), ID_CHUNK):
                items = await self.service.store.get(ids[start:start + ID_CHUNK])
                found |= {item.id for item in items}
        except PardusError as exc:  # Milvus down, a version gone
            raise TargetError(f"the catalogue cannot be read: {exc}") from None
        return set(ids) - found

    async def catalogue_size(self) -> int | None:
        try:
            return await self.service.store.count()
        except PardusError as exc:
            raise TargetError(f"the catalogue cannot be read: {exc}") from None

    async def close(self) -> None:
        await self.service.store.close()


class HttpTarget:
    """POST /v1/search of a running service; ids checked with GET /v1/items/{id}."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300):
        self.url, self.name = url, f"the service at {url}"
        self.client = PardusClient(url, api_key, timeout_s)

    @staticmethod
    def request(query: EvalQuery, image: bytes | None, ask: Ask) -> SearchRequest:
        return SearchRequest(
            text=query.text, image=base64.b64encode(image).decode() if image else None,
            k=ask.k, rerank=ask.rerank, mode=ask.mode, weights=ask.weights, boosts=ask.boosts,
            min_relevance=ask.min_relevance)

    async def search(self, query: EvalQuery, ask: Ask) -> Answer:
        image = await asyncio.to_thread(query.image.read_bytes) if query.image else None
        request = self.request(query, image, ask)
        start = time.perf_counter()
        try:
            response = await self.client.search(request)
        except PardusError as exc:
            raise _failed(query, exc, self.name) from None
        return _answer(response, time.perf_counter() - start)

    async def _exists(self, item_id: str, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                await self.client.item(item_id)
                return True
            except NotFound:
                return False
            except PardusError as exc:
                raise TargetError(f"{self.name} cannot look up items: {exc.message}") from None

    async def missing(self, ids: list[str]) -> set[str]:
        gate = asyncio.Semaphore(8)
        found = await asyncio.gather(*(self._exists(item, gate) for item in ids))
        return {item for item, ok in zip(ids, found) if not ok}

    async def catalogue_size(self) -> int | None:
        return None  # the API does not say; pass --catalogue-size for the chance level

    async def close(self) -> None:
        await self.client.close()
