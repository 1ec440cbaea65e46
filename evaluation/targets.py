"""What an evaluation searches: the running service over HTTP, or the search service in process.

Both send the same typed request (serve.schemas.SearchRequest over HTTP, serve.search.Query in
process) and read the same SearchResponse, so their answers compare one to one.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from pydantic import ValidationError

from pardus.deployments.catalogue.store import StoreError, StoreUnavailable
from pardus.deployments.names import Mode
from pardus.deployments.settings import Settings, Weights
from pardus.evaluation.queries import EvalQuery
from pardus.serve.errors import ApiError
from pardus.serve.schemas import SearchRequest, SearchResponse

ID_CHUNK = 256  # ids per catalogue lookup


@dataclass(frozen=True)
class Ask:
    """One search of a run: the mode, fusion weights (None: the server's) and rerank."""

    mode: Mode
    weights: Weights | None
    rerank: bool
    k: int


@dataclass(frozen=True)
class Answer:
    ids: list[str]  # best first, as returned
    seconds: float  # the call, as the caller waits for it
    fusion: str | None
    reranked: bool
    outcome: str  # the rerank outcome (reranked, off, timeout, ...)
    repaired: bool = False  # the reranker's answer needed repairs (missing or invented ids)


class TargetError(RuntimeError):
    """The target cannot be searched (down, refusing us): nothing to measure."""


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
                  response.reranked, response.rerank.outcome, bool(response.rerank.repairs))


class InProcessTarget:
    """serve.search.SearchService in this process (the embedder loaded here, no reranker)."""

    def __init__(self, settings: Settings):
        from pardus.serve.factory import build_search_service, local_models

        self.settings = settings
        self.name = f"in process: {settings.milvus.collection!r} at {settings.milvus.uri}"
        self.service = build_search_service(settings, local_models(settings))

    async def search(self, query: EvalQuery, ask: Ask) -> Answer:
        from pardus.serve.search import Query

        image = await asyncio.to_thread(query.image.read_bytes) if query.image else None
        start = time.perf_counter()
        try:
            response = await self.service.search(Query(query.text, image, ask.k, None,
                                                       ask.rerank, ask.mode, ask.weights))
        except ApiError as exc:
            if exc.status >= 500:
                raise TargetError(exc.message) from None
            raise QueryRefused(query, exc.message) from None
        return _answer(response, time.perf_counter() - start)

    async def missing(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        try:
            for start in range(0, len(ids), ID_CHUNK):
                items = await self.service.store.get(ids[start:start + ID_CHUNK])
                found |= {item.id for item in items}
        except (StoreError, StoreUnavailable) as exc:  # Milvus down, a version gone
            raise TargetError(f"the catalogue cannot be read: {exc}") from None
        return set(ids) - found

    async def catalogue_size(self) -> int | None:
        try:
            return await self.service.store.count()
        except (StoreError, StoreUnavailable) as exc:
            raise TargetError(f"the catalogue cannot be read: {exc}") from None

    async def close(self) -> None:
        await self.service.store.close()


class HttpTarget:
    """POST /v1/search of a running service; ids checked with GET /v1/items/{id}."""

    def __init__(self, url: str, api_key: str | None = None, timeout_s: float = 300):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url, self.name = url, f"the service at {url}"
        self.client = httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout_s)

    @staticmethod
    def body(query: EvalQuery, image: bytes | None, ask: Ask) -> dict:
        request = SearchRequest(
            text=query.text, image=base64.b64encode(image).decode() if image else None,
            k=ask.k, rerank=ask.rerank, mode=ask.mode.value, weights=ask.weights)
        return request.model_dump(mode="json", exclude_none=True)

    def _unreachable(self, exc: httpx.HTTPError) -> TargetError:
        if isinstance(exc, httpx.ConnectError):
            return TargetError(f"no Pardus service answers at {self.url}: start one (pardus "
                               "serve), or measure in process (--in-process)")
        return TargetError(f"no answer from {self.name}: {exc!r}")

    async def _post(self, body: dict) -> httpx.Response:
        try:
            return await self.client.post("/v1/search", json=body)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    async def search(self, query: EvalQuery, ask: Ask) -> Answer:
        image = await asyncio.to_thread(query.image.read_bytes) if query.image else None
        body = self.body(query, image, ask)
        start = time.perf_counter()
        response = await self._post(body)
        seconds = time.perf_counter() - start
        if response.status_code == 401:
            raise TargetError(f"{self.name} needs an API key: pass --api-key (or set "
                              "PARDUS_API_KEY)")
        if response.status_code >= 500:
            raise TargetError(f"{self.name} answered {response.status_code}: "
                              f"{_message(response)}")
        if response.status_code != 200:
            raise QueryRefused(query, f"HTTP {response.status_code}: {_message(response)}")
        try:
            return _answer(SearchResponse.model_validate_json(response.content), seconds)
        except ValidationError:
            raise TargetError(f"{self.name} answered something that is not a Pardus search "
                              "response") from None

    async def _exists(self, item_id: str, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                response = await self.client.get(f"/v1/items/{item_id}")
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        if response.status_code not in (200, 404):
            raise TargetError(f"{self.name} answered {response.status_code} to an item "
                              f"lookup: {_message(response)}")
        return response.status_code == 200

    async def missing(self, ids: list[str]) -> set[str]:
        gate = asyncio.Semaphore(8)
        found = await asyncio.gather(*(self._exists(item, gate) for item in ids))
        return {item for item, ok in zip(ids, found) if not ok}

    async def catalogue_size(self) -> int | None:
        return None  # the API does not say; pass --catalogue-size for the chance level

    async def close(self) -> None:
        await self.client.aclose()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
