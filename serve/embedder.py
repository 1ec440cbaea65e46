"""Ray Serve deployment of the embedder: a shell around deployments.embedder with dynamic batching.

Concurrent queries are gathered by `@serve.batch` into one forward pass; the batch size and
wait come from the deployment's user_config, so they change without a restart.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass

import numpy as np
from ray import serve

from deployments.embedder.images import ImageError
from deployments.settings import EmbedderSettings

DEFAULT_BATCHING = {"max_batch_size": 32, "batch_wait_timeout_s": 0.01}


@dataclass
class EmbedQuery:
    text: str = ""
    image: bytes | None = None  # encoded image bytes; None = a text-only query


@serve.deployment(
    name="Embedder",
    ray_actor_options={"num_cpus": 1},
    max_ongoing_requests=128,  # must exceed max_batch_size, or batches never fill
    user_config=DEFAULT_BATCHING,
    graceful_shutdown_timeout_s=10,
)
class EmbedderDeployment:
    def __init__(self, settings: dict | None = None):
        from deployments.embedder.encoder import Embedder

        self.embedder = Embedder(EmbedderSettings(**(settings or {})))
        self.batch_sizes: Counter = Counter()

    def reconfigure(self, config: dict) -> None:
        """Apply batching settings from user_config (no restart)."""
        config = {**DEFAULT_BATCHING, **(config or {})}
        self.embed.set_max_batch_size(int(config["max_batch_size"]))
        self.embed.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    def _encode(self, queries: list[EmbedQuery]) -> list[np.ndarray | ImageError]:
        out: list[np.ndarray | ImageError] = [None] * len(queries)  # type: ignore[list-item]
        texts = [i for i, q in enumerate(queries) if q.image is None]
        pairs = [i for i, q in enumerate(queries) if q.image is not None]
        if texts:
            rows = self.embedder.encode_texts([queries[i].text for i in texts]).vectors
            for i, row in zip(texts, rows):
                out[i] = row
        if pairs:
            result = self.embedder.encode_pairs([queries[i].image for i in pairs],
                                                [queries[i].text for i in pairs])
            for i, row, error in zip(pairs, result.vectors, result.errors):
                out[i] = error if error is not None else row
        return out

    @serve.batch(**DEFAULT_BATCHING)
    async def embed(self, queries: list[EmbedQuery]) -> list[np.ndarray | ImageError]:
        """One query in, one vector (or the image's error) out; batched across callers."""
        self.batch_sizes[len(queries)] += 1
        return await asyncio.to_thread(self._encode, queries)  # keeps the replica responsive

    def batch_size_histogram(self) -> dict[int, int]:
        return dict(self.batch_sizes)
