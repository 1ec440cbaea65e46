"""The backlog batcher: batches take what queued while the model ran; an idle model takes a
lone item at once; errors and cancelled callers stay with their own items."""

from __future__ import annotations

import asyncio
import time

import pytest

from pardus.deployments.batching import BacklogBatcher


class SlowModel:
    """Doubles numbers, taking `seconds` per batch; records each batch."""

    def __init__(self, seconds: float):
        self.seconds, self.batches = seconds, []

    async def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.seconds)
        return [2 * i for i in items]


def test_concurrent_requests_form_batches_of_the_backlog():
    """On a model that takes 0.2 s a batch: a first caller runs alone (the model was idle, no
    wait), the 15 that come while it runs share the next pass."""
    model = SlowModel(0.2)
    sizes: list[int] = []
    batcher = BacklogBatcher(model, max_batch_size=32, on_batch=sizes.append)

    async def run():
        first = asyncio.ensure_future(batcher(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(batcher(i)) for i in range(1, 16)]
        return await asyncio.gather(first, *rest)

    assert asyncio.run(run()) == [2 * i for i in range(16)]
    assert sizes == [1, 15], sizes
    assert sorted(i for batch in model.batches for i in batch) == list(range(16))


def test_the_backlog_is_cut_at_max_batch_size():
    model = SlowModel(0.1)
    batcher = BacklogBatcher(model, max_batch_size=4)

    async def run():
        return await asyncio.gather(*[batcher(i) for i in range(11)])

    assert asyncio.run(run()) == [2 * i for i in range(11)]
    assert [len(b) for b in model.batches] == [4, 4, 3]


@pytest.mark.parametrize("wait_s", [0.0, 1.0])
def test_a_lone_request_waits_only_for_a_configured_fill(wait_s):
    """No timer by default: a lone request on an idle model goes at once; a configured wait
    (batch_wait_timeout_s) is the one thing that holds it."""
    batcher = BacklogBatcher(SlowModel(0.0), max_batch_size=32, max_wait_s=wait_s)

    async def run():
        start = time.perf_counter()
        assert await batcher(3) == 6
        return time.perf_counter() - start

    took = asyncio.run(run())
    if wait_s:
        assert took >= wait_s * 0.9, took
    else:
        assert took < 0.5, took  # a timer of even one wait window would show; 0.5 s is slack


def test_a_configured_wait_ends_when_the_batch_is_full():
    model = SlowModel(0.0)
    batcher = BacklogBatcher(model, max_batch_size=4, max_wait_s=30.0)

    async def run():
        return await asyncio.wait_for(asyncio.gather(*[batcher(i) for i in range(4)]), 10)

    assert asyncio.run(run()) == [0, 2, 4, 6]
    assert [len(b) for b in model.batches] == [4]


def test_a_failing_batch_fails_its_callers_only_and_the_loop_goes_on():
    calls = []

    async def handler(items: list[int]) -> list[int]:
        calls.append(items)
        if 0 in items:
            raise ValueError("model broke")
        return [i + 1 for i in items]

    batcher = BacklogBatcher(handler)

    async def run():
        with pytest.raises(ValueError, match="model broke"):
            await batcher(0)
        return await batcher(5)

    assert asyncio.run(run()) == 6


def test_a_handler_that_answers_the_wrong_number_of_results_is_an_error():
    async def handler(items: list[int]) -> list[int]:
        return items[:-1]

    batcher = BacklogBatcher(handler)

    async def run():
        with pytest.raises(RuntimeError, match="0 results for 1 items"):
            await batcher(1)

    asyncio.run(run())


def test_a_cancelled_caller_is_not_computed():
    model = SlowModel(0.2)
    batcher = BacklogBatcher(model)

    async def run():
        first = asyncio.ensure_future(batcher(1))
        await asyncio.sleep(0.05)  # the model runs 1
        gone = asyncio.ensure_future(batcher(2))
        kept = asyncio.ensure_future(batcher(3))
        await asyncio.sleep(0)
        gone.cancel()
        return await first, await kept

    assert asyncio.run(run()) == (2, 6)
    assert model.batches == [[1], [3]]


def test_bad_sizes_are_refused():
    batcher = BacklogBatcher(SlowModel(0.0))
    with pytest.raises(ValueError, match="at least 1"):
        batcher.configure(max_batch_size=0)
    with pytest.raises(ValueError, match="negative"):
        batcher.configure(max_wait_s=-1)
