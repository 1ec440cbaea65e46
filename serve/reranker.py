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
        """settings: overrides on top of the PARDUS_* environment (Settings' nested shape)."""
        from deployments.reranker.engine import VLLMGenerator

        self.settings = Settings(**(settings or {})).reranker
        self.generator = VLLMGenerator(self.settings)
        self.reranker = Reranker(self.generator, self.settings)

    async def rerank(self, query_text: str, query_image: bytes | Image.Image | None,
                     candidates: list[tuple[str, bytes | Image.Image | None]]) -> dict:
        """All candidates best first, as a dict (RerankResult's fields)."""
        result = await self.reranker.rerank(
            query_text, _image(query_image),
            [Candidate(cid, _image(img)) for cid, img in candidates],
        )
        return asdict(result)

    def stats(self) -> dict[str, int]:
        return dict(self.reranker.stats)

    async def check_health(self) -> None:
        await self.generator.check_health()  # a dead engine makes Serve replace the replica

    def __del__(self):
        generator = getattr(self, "generator", None)
        if generator is not None:
            generator.shutdown()
