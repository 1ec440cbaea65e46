"""Ray Serve deployment of the vLLM reranker: a shell around deployments.reranker.

One replica owns one vLLM engine (continuous batching inside it); replicas, GPUs and
concurrency come from the Serve config. The rerank logic stays plain code, testable without Ray.
"""

from __future__ import annotations

from dataclasses import asdict

from PIL import Image
from ray import serve

from deployments.embedder.images import ImageError, ImageLimits, decode_image
from deployments.reranker.service import Candidate, Reranker
from deployments.settings import Settings


def _image(data: bytes | Image.Image | None) -> Image.Image | None:
    """A picture for the grid; None (a grey cell) for an image that cannot be read."""
    if data is None or isinstance(data, Image.Image):
        return data
    try:
        return decode_image(data, ImageLimits())
    except ImageError:
        return None


@serve.deployment(
    name="Reranker",
    ray_actor_options={"num_cpus": 0.5},  # the Serve config sets production values
    max_ongoing_requests=32,  # concurrent requests reach the engine and batch there
    health_check_period_s=10,
    graceful_shutdown_timeout_s=20,
)
class RerankerDeployment:
    def __init__(self, settings: dict | None = None):
        """settings: overrides on top of the PARDUS_* environment (Settings' nested shape).
        With the reranker disabled the replica loads nothing and stays an idle placeholder,
        so one Serve config (which names every deployment) serves both ways."""
        self.settings = Settings(**(settings or {})).reranker
        self.generator = self.reranker = None
        if self.settings.enabled:
            from deployments.reranker.engine import VLLMGenerator

            self.generator = VLLMGenerator(self.settings)
            self.reranker = Reranker(self.generator, self.settings)

    async def rerank(self, query_text: str, query_image: bytes | Image.Image | None,
                     candidates: list[tuple[str, bytes | Image.Image | None]]) -> dict:
        """All candidates best first, as a dict (RerankResult's fields)."""
        if self.reranker is None:
            raise RuntimeError("the reranker is disabled (PARDUS_RERANKER__ENABLED=false)")
        result = await self.reranker.rerank(
            query_text, _image(query_image),
            [Candidate(cid, _image(img)) for cid, img in candidates],
        )
        return asdict(result)

    def stats(self) -> dict[str, int]:
        return dict(self.reranker.stats) if self.reranker is not None else {}

    async def check_health(self) -> None:
        if self.generator is not None:  # a dead engine makes Serve replace the replica
            await self.generator.check_health()

    def __del__(self):
        generator = getattr(self, "generator", None)
        if generator is not None:
            generator.shutdown()
