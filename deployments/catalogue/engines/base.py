"""What every Milvus engine shares: the client, the alias cache, the search routes of a plan,
and how a failure is sorted into StoreUnavailable (try later) or StoreError (refused), by gRPC
status and Milvus error code."""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from typing import NamedTuple

import grpc
import numpy as np
from pymilvus import AnnSearchRequest, MilvusClient
from pymilvus.exceptions import MilvusException, MilvusUnavailableException

from pardus.deployments.catalogue import schema
from pardus.deployments.catalogue.connection import StoreError, StoreUnavailable
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.settings import MilvusSettings

# Milvus's own error codes (pkg/util/merr) that mean "not now": a retry may succeed. Code 1
# (service not ready) is also pymilvus's default for its own client-side errors, so it counts
# only with the retriable flag the server sets on it (like every retriable code).
SERVICE_UNAVAILABLE = 2  # also pymilvus's "Fail connecting to server" (Status.CONNECT_FAILED)
TOO_MANY_REQUESTS, RATE_LIMIT = 4, 8
CANCELED, TIMEOUT = 10000, 10001
NOT_NOW = frozenset({SERVICE_UNAVAILABLE, TOO_MANY_REQUESTS, RATE_LIMIT, CANCELED, TIMEOUT})
COLLECTION_NOT_FOUND = 100
# gRPC statuses of a call that got no answer: raw from pymilvus (it does not retry a deadline)
# or as the code of its MilvusException after its own retries ran out. Any other status is an
# answer (UNIMPLEMENTED, INVALID_ARGUMENT, PERMISSION_DENIED, RESOURCE_EXHAUSTED for a message
# over the size limit...) that a retry would get again.
NO_ANSWER = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.CANCELLED, grpc.StatusCode.ABORTED})


@contextmanager
def quiet_pymilvus():
    """pymilvus logs a traceback at ERROR for every refused call, expected ones too (an alias
    that does not exist yet, a call the engine lacks): silence it for those."""
    logger = logging.getLogger("pymilvus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def status_code(exc: BaseException) -> int | grpc.StatusCode | None:
    """The gRPC status or Milvus error code a pymilvus failure carries (None: not one)."""
    if isinstance(exc, MilvusException):
        return exc.code
    code = getattr(exc, "code", None) if isinstance(exc, grpc.RpcError) else None
    return code() if callable(code) else None


def not_now(exc: BaseException) -> bool:
    """Whether a pymilvus failure says "not now" (no answer, or a retriable one)."""
    code = status_code(exc)
    if isinstance(code, grpc.StatusCode):
        return code in NO_ANSWER
    return isinstance(exc, MilvusException) and (
        isinstance(exc, MilvusUnavailableException) or exc.retriable or code in NOT_NOW)


def classify(exc: BaseException, uri: str, what: str) -> StoreUnavailable | StoreError | None:
    """The store's error for a failure of `what` at `uri`; None when it is not a failure of
    Milvus (a bug of ours, which must surface as it is)."""
    code = status_code(exc)
    if isinstance(code, grpc.StatusCode):
        if code in NO_ANSWER:
            return StoreUnavailable(f"Milvus at {uri} did not answer {what} ({code.name})")
        return StoreError(f"Milvus refused {what} ({code.name}): {_detail(exc)}")
    if isinstance(exc, MilvusException):
        if not_now(exc):
            return StoreUnavailable(f"Milvus at {uri} is unavailable: {exc.message}")
        return StoreError(f"Milvus refused {what}: {exc.message}")
    if isinstance(exc, OSError):  # ConnectionError, TimeoutError: a socket under pymilvus
        return StoreUnavailable(f"Milvus at {uri} is unreachable: {exc}")
    return None


def _detail(exc: BaseException) -> str:
    if isinstance(exc, MilvusException):
        return exc.message
    details = getattr(exc, "details", None)
    return (details() if callable(details) else None) or str(exc)


class Match(NamedTuple):
    """One item a search found: its row's fields (those of schema.ROW_FIELDS the collection
    holds) and its score."""

    entity: dict
    score: float


class AliasBook:
    """Which collection an alias names, looked up at most once per `refresh_s`."""

    def __init__(self, client: MilvusClient, refresh_s: float):
        self.client, self.refresh_s = client, refresh_s
        self._cache: dict[str, tuple[float, str | None]] = {}

    def target(self, alias: str) -> str | None:
        cached = self._cache.get(alias)
        if cached and time.monotonic() - cached[0] < self.refresh_s:
            return cached[1]
        found = self._lookup(alias)
        self._cache[alias] = (time.monotonic(), found)
        return found

    def point(self, alias: str, collection: str) -> None:
        self._point(alias, collection)
        self._cache[alias] = (time.monotonic(), collection)

    def forget(self, alias: str) -> None:
        """Drop the cached lookup (its target went away)."""
        self._cache.pop(alias, None)

    def _lookup(self, alias: str) -> str | None:
        raise NotImplementedError

    def _point(self, alias: str, collection: str) -> None:
        raise NotImplementedError


class Engine:
    """A connected Milvus of one kind. Subclasses own what differs between kinds: the alias
    book, how the routes of a plan are fused, and any failure only their kind has."""

    kind = "milvus"

    def __init__(self, client: MilvusClient, settings: MilvusSettings, uri: str):
        self.client, self.settings, self.uri = client, settings, uri
        self.aliases = self._alias_book()

    def _alias_book(self) -> AliasBook:
        raise NotImplementedError

    def classify(self, exc: BaseException, what: str) -> StoreUnavailable | StoreError | None:
        return classify(exc, self.uri, what)

    @staticmethod
    def collection_missing(exc: BaseException) -> bool:
        return isinstance(exc, MilvusException) and exc.code == COLLECTION_NOT_FOUND

    def search(self, name: str, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
               expr: str, fields: list[str]) -> list[Match]:
        """The k best items of collection `name` for the plan, one match per item (its
        best-matching picture, with `fields`), best first; every route obeys `expr`."""
        raise NotImplementedError

    # -- shared by the kinds -------------------------------------------------------------------
    def routes(self, plan: SearchPlan, vector: np.ndarray | None, text: str, expr: str,
               lexical: bool = True) -> list[AnnSearchRequest]:
        """One search request per route of the plan (lexical=False leaves BM25 out)."""
        routes = []
        if plan.dense_field is not None:
            params = dict(self.settings.search_params.get(self.settings.index_type, {}))
            if "ef" in params:
                params["ef"] = max(params["ef"], plan.candidates)
            routes.append(AnnSearchRequest([np.asarray(vector, dtype=np.float32).tolist()],
                                           plan.dense_field, {"metric_type": "COSINE",
                                                              "params": params},
                                           limit=plan.candidates, expr=expr))
        if plan.lexical and lexical:
            routes.append(AnnSearchRequest([text], schema.SPARSE, {"metric_type": "BM25"},
                                           limit=plan.candidates, expr=expr))
        return routes

    def _grouped(self, fields: list[str]) -> dict:
        """What every search asks for: one row per item, the fields a hit shows."""
        return dict(output_fields=fields, group_by_field="item_id",
                    consistency_level=self.settings.consistency_level,
                    timeout=self.settings.timeout_s)

    def search_route(self, name: str, route: AnnSearchRequest, expr: str, limit: int,
                     fields: list[str]) -> list[Match]:
        """One route alone, grouped by item."""
        found = self.client.search(name, data=route.data, anns_field=route.anns_field,
                                   search_params=route.param, filter=expr, limit=limit,
                                   **self._grouped(fields))[0]
        return matches(found, fields)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing a dead connection must not raise
            pass


def matches(found, fields: list[str]) -> list[Match]:
    """pymilvus's hits as matches, in their order."""
    return [Match({f: row["entity"][f] for f in fields if f in row["entity"]},
                  float(row["distance"])) for row in found]
