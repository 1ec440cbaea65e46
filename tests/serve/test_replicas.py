"""ReplicaWatch alone, on counts the test sets: a call to a deployment with no serving replica
fails at once, a waiting one gives up when the last replica goes, and unknown counts let calls
through. (Over the real Serve app: tests/serve/test_deadlines.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest

from pardus.serve.replicas import NoReplica, ReplicaWatch


def watch_on(counts: dict[str, int] | None) -> ReplicaWatch:
    def read() -> dict[str, int]:
        if counts is None:
            raise ConnectionError("the controller is restarting")
        return dict(counts)

    return ReplicaWatch(read, every_s=0.02)


async def settle() -> None:
    await asyncio.sleep(0.1)  # a few reads


def test_calls_go_through_while_replicas_serve_or_the_counts_are_unknown():
    async def main():
        for counts in ({"Embedder": 2}, None, {}):
            watch = watch_on(counts)
            assert await watch.call("Embedder", lambda: asyncio.sleep(0, result=7)) == 7
            await settle()
            assert await watch.call("Embedder", lambda: asyncio.sleep(0, result=8)) == 8

    asyncio.run(main())


def test_no_serving_replica_fails_at_once_without_making_the_call():
    made = []

    async def call():
        made.append(1)
        await asyncio.sleep(3600)

    async def main():
        watch = watch_on({"Reranker": 0, "Embedder": 1})
        assert await watch.call("Embedder", lambda: asyncio.sleep(0, result=1)) == 1
        await settle()
        start = time.perf_counter()
        with pytest.raises(NoReplica, match="no Reranker replica is running"):
            await watch.call("Reranker", call)
        return time.perf_counter() - start

    assert asyncio.run(main()) < 0.05
    assert made == []


def test_a_waiting_call_gives_up_when_the_last_replica_goes_and_later_ones_go_through():
    cancelled = []

    async def waits():
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(1)
            raise

    async def main():
        counts = {"Embedder": 1}
        watch = ReplicaWatch(lambda: dict(counts), every_s=0.02)
        waiting = asyncio.ensure_future(watch.call("Embedder", waits))
        await settle()
        assert not waiting.done()
        counts["Embedder"] = 0  # killed: its replacement loads
        start = time.perf_counter()
        with pytest.raises(NoReplica):
            await waiting
        gave_up = time.perf_counter() - start
        await asyncio.sleep(0)
        counts["Embedder"] = 1  # the replacement serves
        await settle()
        assert await watch.call("Embedder", lambda: asyncio.sleep(0, result="ok")) == "ok"
        return gave_up

    assert asyncio.run(main()) < 0.5
    assert cancelled == [1]  # the abandoned call was cancelled, not left running
