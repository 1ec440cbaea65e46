"""Ray Serve deployment of the vLLM reranker: a thin shell around deployments.reranker.

One replica owns one vLLM engine (continuous batching inside it); replicas, GPUs and
concurrency come from the Serve config. The rerank logic stays plain code, testable without Ray.
"""

from __future__ import annotations

import asyncio
import time

from PIL import Image
from ray import serve

from pardus.deployments.embedder.images import ImageError, ImageLimits, decode_image
from pardus.deployments.reranker.policy import RerankRequest, RerankResult
from pardus.deployments.reranker.service import Candidate, Reranker
from pardus.deployments.settings import Settings


def _picture(data: bytes | None, limits: ImageLimits) -> Image.Image | None:
    """A picture for the grid; None (a grey cell) for an image that cannot be read."""
    if data is None:
        return None
    try:
        return decode_image(data, limits)
    except ImageError:
        return None


@serve.deployment(name="Reranker")  # replicas, resources, timeouts: serve/config.yaml
class RerankerDeployment:
    def __init__(self, settings: dict | None = None):
        """settings: overrides on top of the PARDUS_* environment (Settings' nested shape).
        With the reranker disabled the replica loads nothing and stays an idle placeholder,
        so one Serve config (which names every deployment) serves both ways."""
        resolved = Settings(**(settings or {}))
        self.settings = resolved.reranker
        self.limits = ImageLimits.of(resolved.embedder)
        self.generator = self.reranker = None
        if self.settings.enabled:
            # vLLM only where it runs: a disabled reranker is a placeholder that loads nothing.
            from pardus.deployments.reranker.engine import VLLMGenerator

            self.generator = VLLMGenerator(self.settings)
            self.reranker = Reranker(self.generator, self.settings)

    def _decode(self, request: RerankRequest) -> tuple[Image.Image | None, list[Candidate]]:
        return (_picture(request.image, self.limits),
                [Candidate(cid, _picture(data, self.limits)) for cid, data in request.candidates])

    async def rerank(self, request: RerankRequest) -> RerankResult:
        """Every candidate, best first (RerankResult.outcome says whether the model ranked)."""
        if self.reranker is None:
            raise RuntimeError("the reranker is disabled (PARDUS_RERANKER__ENABLED=false)")
        start = time.monotonic()
        # decoding is CPU work: off the event loop that drives the engine
        query, candidates = await asyncio.to_thread(self._decode, request)
        budget = request.budget_s
        if budget is not None:  # what decoding left of it
            budget = max(0.0, budget - (time.monotonic() - start))
        return await self.reranker.rerank(request.text, query, candidates, budget)

    def stats(self) -> dict[str, int]:
        return dict(self.reranker.stats) if self.reranker is not None else {}

    async def check_health(self) -> None:
        if self.generator is not None:  # a dead engine makes Serve replace the replica
            await self.generator.check_health()

    def __del__(self):
        generator = getattr(self, "generator", None)
        if generator is not None:
            generator.shutdown()
