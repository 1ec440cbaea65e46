"""The rerank stage of a search: the page's head to the reranker, within the search's rerank
deadline (RerankPolicy owns it), and always an order back: the retrieval order, flagged, when
the reranker is off, slow, down or answers nonsense."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pardus.deployments.catalogue.store import Hit
from pardus.deployments.embedder.images import ImageError
from pardus.deployments.names import RerankOutcome
from pardus.deployments.reranker.policy import RerankPolicy, RerankRequest, RerankResult
from pardus.serve.images import ImageLibrary

log = logging.getLogger(__name__)
T = TypeVar("T")
Rerank = Callable[[RerankRequest], Awaitable[RerankResult]]


def ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000


async def within(call: Awaitable[T], timeout: float) -> T:
    """The call's result, or asyncio.TimeoutError at `timeout` sharp. Unlike wait_for, a call
    that does not stop when cancelled (a deployment handle waiting for a replica that is being
    replaced) is abandoned, not waited for: the answer keeps its deadline."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        abandon(task)
        raise asyncio.TimeoutError
    return task.result()


def abandon(task: asyncio.Future) -> None:
    """Cancel a call nobody waits for any more, and let its end go unread (no "exception was
    never retrieved" in the log)."""
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class RerankStage:
    def __init__(self, policy: RerankPolicy, rerank: Rerank | None, images: ImageLibrary):
        self.policy, self.rerank, self.images = policy, rerank, images

    def _pictures(self, hits: list[Hit]) -> list[tuple[str, bytes | None]]:
        out = []
        for hit in hits:
            try:
                out.append((hit.item.id, self.images.read(hit.image)))  # the matched picture
            except ImageError:
                out.append((hit.item.id, None))  # a grey cell: the reranker still ranks it
        return out

    async def run(self, text: str, image: bytes | None, hits: list[Hit], asked: bool,
                  timings: dict[str, float]) -> RerankResult:
        """Every hit's id in the final order; never raises (retrieval order instead)."""
        ids = [hit.item.id for hit in hits]
        skip = self.policy.skip(asked, self.rerank is not None, len(hits))
        if skip is not None:
            return RerankResult.kept(ids, skip)
        head, tail = self.policy.split(hits)
        head_ids, start = [hit.item.id for hit in head], time.perf_counter()
        deadline = time.monotonic() + self.policy.deadline_s
        try:  # one deadline for the whole stage: reading the pictures, queueing, the model
            result = await within(self._head(text, image, head, timings, deadline),
                                  self.policy.deadline_s)
        except asyncio.TimeoutError:
            result = RerankResult.kept(head_ids, RerankOutcome.TIMEOUT)
        except Exception as exc:  # down or restarting: degrade, flagged
            log.warning("reranker unavailable: %r", exc)
            result = RerankResult.kept(head_ids, RerankOutcome.UNAVAILABLE)
        timings["rerank"] = ms_since(start)
        if result.model_calls:
            timings["rerank_model"] = result.seconds * 1000
        return self.policy.finish(result, head_ids, [hit.item.id for hit in tail])

    async def _head(self, text: str, image: bytes | None, head: list[Hit],
                    timings: dict[str, float], deadline: float) -> RerankResult:
        start = time.perf_counter()
        candidates = await asyncio.to_thread(self._pictures, head)
        timings["load_images"] = ms_since(start)
        left = max(0.0, deadline - time.monotonic())  # the reranker stops its model there
        return await self.rerank(RerankRequest(text, image, candidates, budget_s=left))
