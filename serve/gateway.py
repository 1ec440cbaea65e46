"""The ingress's access to Milvus and to catalogue images: async, reconnecting, bounded."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
from collections import OrderedDict
from pathlib import Path
from collections.abc import Awaitable, Callable
from typing import Any

from PIL import Image

from deployments.embedder.images import ImageLimits, decode_image
from deployments.settings import MilvusSettings
from deployments.store import CatalogueStore, StoreUnavailable
from ingest.fetch import read_image_bytes

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


class ImageLibrary:
    """Catalogue images under one root (a folder or an object storage URI): read with limits,
    write uploads by content, and make thumbnails (a small LRU cache: thumbnails repeat)."""

    def __init__(self, root: str, limits: ImageLimits, thumbnail_cache: int = 512):
        self.root = root
        self.is_local = "://" not in root
        self.local_root = Path(root).expanduser().resolve() if self.is_local else None
        self.limits = limits
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cache_size = thumbnail_cache

    def read(self, reference: str) -> bytes:
        """The bytes of an item's image reference; ImageError when missing or refused (a
        reference that leaves the root is refused, as in ingest)."""
        return read_image_bytes(reference, self.local_root if self.is_local else self.root,
                                self.limits.max_bytes)

    def write_upload(self, data: bytes, image_format: str) -> str:
        """Store uploaded bytes by content hash; returns the reference relative to the root."""
        name = f"uploads/{hashlib.sha256(data).hexdigest()[:32]}.{image_format.lower()}"
        if self.is_local:
            path = self.local_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                tmp = path.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic: a reader never sees half a file
        else:
            from pyarrow import fs

            filesystem, base = fs.FileSystem.from_uri(self.root)
            path = f"{base.rstrip('/')}/{name}"
            if filesystem.get_file_info(path).type == fs.FileType.NotFound:
                # a no-op on object stores; local and HDFS paths need the folder
                filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
                with filesystem.open_output_stream(path) as out:
                    out.write(data)
        return name

    def thumbnail(self, reference: str, size: int) -> bytes:
        """A JPEG at most size x size pixels of the image behind reference."""
        key = (reference, size)
        if key in self._thumbs:
            self._thumbs.move_to_end(key)
            return self._thumbs[key]
        image = decode_image(self.read(reference), self.limits)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        self._thumbs[key] = data
        if len(self._thumbs) > self._cache_size:
            self._thumbs.popitem(last=False)
        return data


def image_format(data: bytes, limits: ImageLimits) -> str:
    """The format of a valid image (fully decoded, within limits), else ImageError."""
    decode_image(data, limits)
    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "png").lower()

