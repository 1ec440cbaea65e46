"""The ingress's query-embedding cache: a repeated query skips the embedder hop.

Shop traffic repeats its head queries heavily, and a query's vector depends only on the
model, the text and the picture's bytes. Entries are keyed by the model's identity, the text
with its whitespace collapsed (the tokenizer splits on whitespace, so the vector is the same)
and the picture's SHA-256; the cache is bounded in bytes per replica (LRU). Callers asking a
query whose embedding is already on its way wait for that one ("joined") instead of sending
it again. Only vectors are kept: an image's error or a failed call is never cached.

Written here rather than with cachetools: it needs a byte bound, per-entry sizes and the
joining of in-flight misses, which its caches do not do together.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from enum import Enum

from pardus.deployments.embedder.queries import Embedding, EmbedQuery
from pardus.deployments.settings import EmbedderSettings

ENTRY_OVERHEAD = 240  # bytes an entry costs beyond its vector and key (dict slot, tuple, ints)


class Lookup(str, Enum):
    HIT = "hit"  # the vector was in the cache
    JOINED = "joined"  # the same query was already being embedded: its answer was shared
    MISS = "miss"  # embedded now


def model_identity(settings: EmbedderSettings) -> str:
    """What makes two replicas' vectors comparable: the weights and how they run."""
    return "|".join(str(v) for v in (settings.checkpoint, settings.text_model,
                                     settings.vision_config, settings.dtype, settings.device))


def cache_key(model: str, query: EmbedQuery, picture: str | None = None) -> tuple[str, str, str]:
    """picture: the image's SHA-256 (hex) when the caller has it already."""
    text = " ".join(query.text.split())
    if query.image is None:
        picture = ""
    elif picture is None:
        picture = hashlib.sha256(query.image).hexdigest()
    return model, text, picture


class QueryCache:
    def __init__(self, max_bytes: int, model: str):
        self.max_bytes, self.model = max_bytes, model
        self.bytes = 0
        self._entries: OrderedDict[tuple, tuple[Embedding, int]] = OrderedDict()
        self._pending: dict[tuple, asyncio.Future] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def embed(self, query: EmbedQuery, compute: Callable[[], Awaitable[Embedding]],
                    picture: str | None = None) -> tuple[Embedding, Lookup]:
        """The query's embedding from the cache, from a call already on its way, or from
        `compute()` (then kept when it is a vector). picture: the image's SHA-256, if known."""
        if self.max_bytes <= 0:
            return await compute(), Lookup.MISS
        key = cache_key(self.model, query, picture)
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
            return found[0], Lookup.HIT
        lookup, call = Lookup.JOINED, self._pending.get(key)
        if call is None:
            # A task of its own, awaited shielded: the caller that started it giving up (a
            # client gone) must not cancel the call the others wait for.
            lookup, call = Lookup.MISS, asyncio.ensure_future(self._fetch(key, compute))
            self._pending[key] = call
            call.add_done_callback(_retrieve)
        return await asyncio.shield(call), lookup

    async def _fetch(self, key: tuple, compute: Callable[[], Awaitable[Embedding]]) -> Embedding:
        try:
            embedding = await compute()
        finally:
            del self._pending[key]
        if embedding.vector is not None:
            self._put(key, embedding)
        return embedding

    def _put(self, key: tuple, embedding: Embedding) -> None:
        size = embedding.vector.nbytes + len(key[1].encode()) + len(key[2]) + ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        self._entries[key] = (embedding, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted


def _retrieve(call: asyncio.Future) -> None:
    """Marks a call's error as seen (its waiters re-raise it), so a call every waiter left
    logs no 'exception was never retrieved'."""
    if not call.cancelled():
        call.exception()
