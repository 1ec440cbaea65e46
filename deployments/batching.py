"""Batches that follow the backlog: whatever is queued when the model frees up goes in the next
forward pass, up to max_batch_size, and a lone request on an idle model goes at once.

Written here because Ray Serve 2.60's `@serve.batch` forms a batch per wait window and only
then waits for the model (`_process_batches` awaits `wait_for_batch` before
`_process_sub_batches` takes the `max_concurrent_batches` semaphore): a batch holds what one
10 ms window caught, not what queued while the model ran, and a lone query always waits the
full timeout. Here one loop takes the whole queue each time the model is free.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class BacklogBatcher(Generic[Item, Result]):
    """`await batcher(item)` -> its result, computed by `handler(list of items)` in batches.

    max_batch_size: the most items per call of the handler.
    max_wait_s: how long an idle model waits for a batch to fill before running a short one
        (0, the default: it never waits; while the model runs, the backlog builds by itself).
    on_batch: told each batch's size (the batch-size metric).
    """

    def __init__(self, handler: Callable[[list[Item]], Awaitable[list[Result]]],
                 max_batch_size: int = 32, max_wait_s: float = 0.0,
                 on_batch: Callable[[int], None] | None = None):
        self.handler, self.on_batch = handler, on_batch
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_s
        self._queue: deque[tuple[Item, asyncio.Future]] = deque()
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None

    def configure(self, max_batch_size: int | None = None, max_wait_s: float | None = None):
        if max_batch_size is not None:
            if max_batch_size < 1:
                raise ValueError(f"max_batch_size must be at least 1, not {max_batch_size}")
            self.max_batch_size = max_batch_size
        if max_wait_s is not None:
            if max_wait_s < 0:
                raise ValueError(f"max_wait_s must not be negative, not {max_wait_s}")
            self.max_wait_s = max_wait_s

    async def __call__(self, item: Item) -> Result:
        if self._loop_task is None or self._loop_task.done():
            self._arrived = asyncio.Event()
            self._loop_task = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._arrived.set()
        return await future

    def _take(self) -> list[tuple[Item, asyncio.Future]]:
        """Up to max_batch_size queued items whose callers still wait (a cancelled caller's
        item is dropped, not computed)."""
        batch = []
        while self._queue and len(batch) < self.max_batch_size:
            item, future = self._queue.popleft()
            if not future.done():
                batch.append((item, future))
        return batch

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            while self._queue:
                if self.max_wait_s > 0 and len(self._queue) < self.max_batch_size:
                    await self._fill()
                batch = self._take()
                if batch:
                    await self._process(batch)

    async def _fill(self) -> None:
        """Wait up to max_wait_s for the queue to reach max_batch_size."""
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while len(self._queue) < self.max_batch_size:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _process(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = await self.handler([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"the batch handler returned {len(results)} results for "
                                   f"{len(batch)} items")
        except Exception as exc:  # every caller of this batch gets the error; the loop goes on
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # the loop itself is cancelled (the replica stops)
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results):
            if not future.done():
                future.set_result(result)
