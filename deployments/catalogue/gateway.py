"""Async access to the catalogue store: calls in threads, reconnecting, bounded by timeouts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from deployments.settings import MilvusSettings
from deployments.catalogue.store import CatalogueStore, StoreUnavailable

log = logging.getLogger(__name__)


class NoAnswer(StoreUnavailable):
    """Milvus did not answer within the timeout."""


class StoreGateway:
    """A CatalogueStore used from async code: calls run in threads; a lost connection is
    rebuilt on the next call (at most once per `retry_s`), so Milvus coming back heals it."""

    def __init__(self, settings: MilvusSettings, dim: Callable[[], Awaitable[int]],
                 retry_s: float = 1.0):
        self.settings, self.retry_s = settings, retry_s
        self._dim, self.dim = dim, 0  # asked of the embedder once, when first connecting
        self._store: CatalogueStore | None = None
        self._last_attempt = 0.0
        self._lock = asyncio.Lock()

    def _open(self) -> CatalogueStore:
        store = CatalogueStore(self.settings, self.dim)
        try:
            store.ensure_collection()  # an empty catalogue answers searches with no results
        except BaseException:
            store.close()
            raise
        return store

    async def _connected(self) -> CatalogueStore:
        async with self._lock:
            if self._store is not None:
                return self._store
            if time.monotonic() - self._last_attempt < self.retry_s:
                raise StoreUnavailable(f"Milvus at {self.settings.uri} is unavailable")
            self._last_attempt = time.monotonic()
            if not self.dim:
                self.dim = int(await self._dim())
            try:
                self._store = await asyncio.wait_for(asyncio.to_thread(self._open),
                                                     self.settings.timeout_s)
            except asyncio.TimeoutError:
                raise NoAnswer(f"Milvus at {self.settings.uri} did not answer within "
                               f"{self.settings.timeout_s:g} s") from None
            return self._store

    async def _once(self, method: str, args: tuple, timeout: float) -> Any:
        store = await self._connected()
        try:
            return await asyncio.wait_for(asyncio.to_thread(getattr(store, method), *args),
                                          timeout)
        except asyncio.TimeoutError:
            await self.reset(store)
            raise NoAnswer(f"Milvus at {self.settings.uri} did not answer {method} within "
                           f"{timeout:g} s") from None
        except StoreUnavailable:
            await self.reset(store)
            raise

    async def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """store.<method>(*args) in a thread, within the Milvus timeout (pymilvus retries a
        frozen server far past its own). A dropped connection (a server's GOAWAY on an idle
        channel, a restart) is rebuilt and the call tried once more: every store call is
        idempotent (reads, upserts and deletes by id). No answer in time is not retried."""
        timeout = timeout or self.settings.timeout_s
        try:
            return await self._once(method, args, timeout)
        except NoAnswer:
            raise
        except StoreUnavailable:
            return await self._once(method, args, timeout)

    async def reset(self, store: CatalogueStore | None = None) -> None:
        async with self._lock:
            if self._store is not None and (store is None or store is self._store):
                old, self._store = self._store, None
                self._last_attempt = 0.0  # reconnect on the next call, not after a pause
                # closing may block on a dead server: let it finish in the background
                asyncio.get_running_loop().run_in_executor(None, old.close)

    async def check(self) -> str:
        """'ok', or what is wrong (readiness)."""
        try:
            found = await self.call("ping", timeout=min(self.settings.timeout_s, 3.0))
            return "ok" if found else "the collection does not exist"
        except Exception as exc:  # readiness reports every failure, it never raises
            return str(exc) or type(exc).__name__

    async def close(self) -> None:
        await self.reset()
