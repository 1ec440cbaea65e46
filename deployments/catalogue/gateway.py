"""Async access to the catalogue store: typed calls in threads, reconnecting, bounded by
timeouts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from pardus.deployments.catalogue.filters import SearchFilters
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.catalogue.schema import LegacyCollection
from pardus.deployments.catalogue.store import (
    CatalogueStore,
    Found,
    Hit,
    Picture,
    StoreUnavailable,
)
from pardus.deployments.settings import MilvusSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
# pymilvus logs every failed reconnection attempt and every call that found no server, each
# with a traceback, to its own handler (five per outage, measured); the gateway says it once.
NO_SERVER = ("Connection recovery failed", "Fail connecting to server", "server unavailable",
             "StatusCode.UNAVAILABLE")


class _NoServerNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in NO_SERVER)


for _name in ("pymilvus.decorators", "pymilvus.client.connection_manager"):
    logging.getLogger(_name).addFilter(_NoServerNoise())


class NoAnswer(StoreUnavailable):
    """Milvus did not answer within the timeout."""


class StoreGateway:
    """A CatalogueStore used from async code. Each call runs in a thread within the Milvus
    timeout; a lost connection is rebuilt on the next call (at most once per
    `milvus.reconnect_s`), so Milvus coming back heals it."""

    def __init__(self, settings: MilvusSettings, dim: int, create: bool = True):
        """create: make the catalogue's first version when none exists (False for a service
        whose Milvus user may only read)."""
        self.settings, self.dim, self.create = settings, dim, create
        self._store: CatalogueStore | None = None
        self._last_attempt = 0.0
        self._lock = asyncio.Lock()

    # -- the store's operations, typed ------------------------------------------------------
    async def search(self, plan: SearchPlan, vector: np.ndarray | None, text: str, k: int,
                     filters: SearchFilters | None, exclude: str | None = None,
                     pictures: bool = True) -> Found:
        return await self._call("search", lambda store: store.search(
            plan, vector, text, k, filters, exclude, pictures))

    async def with_pictures(self, version: str, hits: Sequence[Hit]) -> list[Hit]:
        return await self._call("with_pictures",
                                lambda store: store.with_pictures(version, hits))

    async def live_version(self) -> str | None:
        """The version searches read now (the store's cached alias lookup)."""
        return await self._call("live_version", lambda store: store.target())

    async def vectors(self, item_id: str) -> tuple[np.ndarray, np.ndarray] | None:
        return await self._call("vectors", lambda store: store.vectors(item_id))

    async def update_attributes(self, changes: dict[str, dict]) -> list[CatalogueItem]:
        return await self._call("update_attributes",
                                lambda store: store.update_attributes(changes))

    async def get(self, ids: Sequence[str]) -> list[CatalogueItem]:
        return await self._call("get", lambda store: store.get(ids))

    async def upsert(self, pictures: Sequence[Picture]) -> int:
        return await self._call("upsert", lambda store: store.upsert(pictures))

    async def delete(self, ids: Sequence[str]) -> list[str]:
        return await self._call("delete", lambda store: store.delete(ids))

    async def count(self) -> int:
        return await self._call("count", lambda store: store.count())

    async def check(self, timeout: float) -> str:
        """'ok', or a stable code for what is wrong (readiness: the caller sees no addresses
        or error text; the log has them); never raises."""
        timeout = min(self.settings.timeout_s, timeout)
        try:
            found = await self._call("ping", lambda store: store.ping(timeout), timeout)
            return "ok" if found else "no_catalogue"
        except Exception as exc:  # readiness reports every failure
            log.warning("readiness: Milvus check failed: %s", exc)
            if isinstance(exc, LegacyCollection):
                return "needs_reindex"
            return "unreachable" if isinstance(exc, StoreUnavailable) else "refused"

    async def close(self) -> None:
        await self._reset()

    # -- connection handling ------------------------------------------------------------------
    async def _call(self, what: str, operation: Callable[[CatalogueStore], T],
                    timeout: float | None = None) -> T:
        """operation(store) in a thread, within the Milvus timeout (pymilvus retries a frozen
        server far past its own). A dropped connection (a server's GOAWAY on an idle channel, a
        restart) is rebuilt and the call tried once more: every store operation is idempotent
        (reads, upserts and deletes by id). No answer in time is not retried."""
        timeout = timeout or self.settings.timeout_s
        try:
            return await self._once(what, operation, timeout)
        except NoAnswer:
            raise
        except StoreUnavailable:
            return await self._once(what, operation, timeout)

    async def _once(self, what: str, operation: Callable[[CatalogueStore], T],
                    timeout: float) -> T:
        store = await self._connected()
        try:
            return await asyncio.wait_for(asyncio.to_thread(operation, store), timeout)
        except asyncio.TimeoutError:
            error = NoAnswer(f"Milvus at {self.settings.uri} did not answer {what} within "
                             f"{timeout:g} s")
            await self._reset(store, error)
            raise error from None
        except StoreUnavailable as exc:
            await self._reset(store, exc)
            raise

    def _open(self) -> CatalogueStore:
        store = CatalogueStore(self.settings, self.dim)
        try:
            store.ensure_collection(create=self.create)  # empty: searches find nothing
        except BaseException:
            store.close()
            raise
        return store

    async def _connected(self) -> CatalogueStore:
        async with self._lock:
            if self._store is not None:
                return self._store
            if time.monotonic() - self._last_attempt < self.settings.reconnect_s:
                raise StoreUnavailable(f"Milvus at {self.settings.uri} is unavailable")
            self._last_attempt = time.monotonic()
            try:
                self._store = await asyncio.wait_for(asyncio.to_thread(self._open),
                                                     self.settings.timeout_s)
            except asyncio.TimeoutError:
                raise NoAnswer(f"Milvus at {self.settings.uri} did not answer within "
                               f"{self.settings.timeout_s:g} s") from None
            return self._store

    async def _reset(self, store: CatalogueStore | None = None,
                     error: BaseException | None = None) -> None:
        async with self._lock:
            if self._store is not None and (store is None or store is self._store):
                if error is not None:  # once per lost connection, however many calls saw it
                    log.warning("lost Milvus at %s, reconnecting: %s", self.settings.uri,
                                _first_line(error))
                old, self._store = self._store, None
                self._last_attempt = 0.0  # reconnect on the next call, not after a pause
                # closing may block on a dead server: let it finish in the background
                asyncio.get_running_loop().run_in_executor(None, old.close)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
