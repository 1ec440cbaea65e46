"""The ingress's query cache: repeats skip the embedder, keys separate what differs, the
byte bound holds, concurrent repeats share one call, failures are never kept."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pardus.deployments.embedder.images import ImageError
from pardus.deployments.embedder.queries import Embedding, EmbedQuery
from pardus.serve.query_cache import ENTRY_OVERHEAD, Lookup, QueryCache, cache_key


class Counting:
    """An embedder stand-in that counts calls (the cache's logic alone; the Serve tests run the
    real embedder behind it)."""

    def __init__(self, delay: float = 0.0, fail: Exception | None = None):
        self.calls, self.delay, self.fail = 0, delay, fail

    def __call__(self, query: EmbedQuery):
        async def compute() -> Embedding:
            self.calls += 1
            await asyncio.sleep(self.delay)
            if self.fail is not None:
                raise self.fail
            vector = np.full(768, len(query.text), dtype=np.float32)
            return Embedding(vector)
        return compute


def run(coro):
    return asyncio.run(coro)


def test_a_repeat_is_a_hit_and_whitespace_does_not_matter():
    cache, model = QueryCache(2**20, "m"), Counting()

    async def go():
        first = await cache.embed(EmbedQuery("red  bag"), model(EmbedQuery("red  bag")))
        again = await cache.embed(EmbedQuery(" red bag\n"), model(EmbedQuery(" red bag\n")))
        return first, again

    (first, a), (again, b) = run(go())
    assert (a, b) == (Lookup.MISS, Lookup.HIT) and model.calls == 1
    assert np.array_equal(first.vector, again.vector)


def test_keys_separate_models_texts_case_and_pictures():
    base = cache_key("m", EmbedQuery("Red bag", b"picture-1"))
    assert base != cache_key("other-model", EmbedQuery("Red bag", b"picture-1"))
    assert base != cache_key("m", EmbedQuery("red bag", b"picture-1"))  # the m3 model is cased
    assert base != cache_key("m", EmbedQuery("Red bag", b"picture-2"))
    assert base != cache_key("m", EmbedQuery("Red bag"))
    assert base == cache_key("m", EmbedQuery("Red   bag ", b"picture-1"))


def test_the_cache_stays_within_its_bytes_and_forgets_the_oldest():
    entry = 768 * 4 + ENTRY_OVERHEAD + 64 + 2
    cache, model = QueryCache(3 * entry, "m"), Counting()

    async def go():
        for text in ["q1", "q2", "q3", "q4"]:
            await cache.embed(EmbedQuery(text), model(EmbedQuery(text)))
        return await cache.embed(EmbedQuery("q1"), model(EmbedQuery("q1")))

    _, lookup = run(go())
    assert cache.bytes <= cache.max_bytes and len(cache) == 3
    assert lookup is Lookup.MISS and model.calls == 5  # q1 was the oldest: evicted


def test_concurrent_repeats_share_one_call():
    cache, model = QueryCache(2**20, "m"), Counting(delay=0.1)

    async def go():
        return await asyncio.gather(*[cache.embed(EmbedQuery("lamp"), model(EmbedQuery("lamp")))
                                      for _ in range(8)])

    lookups = [lookup for _, lookup in run(go())]
    assert model.calls == 1
    assert lookups.count(Lookup.MISS) == 1 and lookups.count(Lookup.JOINED) == 7


def test_a_failed_call_fails_its_waiters_and_is_not_kept():
    cache = QueryCache(2**20, "m")
    broken, fine = Counting(delay=0.05, fail=RuntimeError("embedder down")), Counting()

    async def go():
        results = await asyncio.gather(
            *[cache.embed(EmbedQuery("mug"), broken(EmbedQuery("mug"))) for _ in range(3)],
            return_exceptions=True)
        assert all(isinstance(r, RuntimeError) for r in results)
        return await cache.embed(EmbedQuery("mug"), fine(EmbedQuery("mug")))

    _, lookup = run(go())
    assert lookup is Lookup.MISS and broken.calls == 1 and fine.calls == 1


def test_an_image_error_is_not_kept():
    cache, calls = QueryCache(2**20, "m"), []

    async def bad() -> Embedding:
        calls.append(1)
        return Embedding(None, error=ImageError("not_an_image", "not an image"))

    async def go():
        for _ in range(2):
            embedding, lookup = await cache.embed(EmbedQuery("x", b"junk"), bad)
            assert embedding.error is not None and lookup is Lookup.MISS

    run(go())
    assert len(calls) == 2 and len(cache) == 0


def test_a_caller_that_gives_up_does_not_cancel_the_others():
    cache, model = QueryCache(2**20, "m"), Counting(delay=0.2)

    async def go():
        first = asyncio.ensure_future(cache.embed(EmbedQuery("cup"), model(EmbedQuery("cup"))))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(cache.embed(EmbedQuery("cup"), model(EmbedQuery("cup"))))
        await asyncio.sleep(0.01)
        first.cancel()
        embedding, lookup = await second
        return embedding, lookup, first.cancelled()

    embedding, lookup, cancelled = run(go())
    assert cancelled and lookup is Lookup.JOINED and embedding.vector is not None
    assert model.calls == 1


def test_size_zero_turns_it_off():
    cache, model = QueryCache(0, "m"), Counting()

    async def go():
        for _ in range(2):
            await cache.embed(EmbedQuery("a"), model(EmbedQuery("a")))

    run(go())
    assert model.calls == 2 and len(cache) == 0


@pytest.mark.parametrize("size", [1, 100])
def test_an_entry_bigger_than_the_cache_is_not_kept(size):
    cache, model = QueryCache(size, "m"), Counting()
    run(cache.embed(EmbedQuery("a"), model(EmbedQuery("a"))))
    assert len(cache) == 0 and cache.bytes == 0
