"""Ray Serve deployment of the embedder: a thin shell around the model with dynamic batching.

Concurrent queries share forward passes: each pass takes every query queued while the last
one ran (deployments/batching.py), so batches grow with the load and a lone query goes at
once. The batch size (and an optional wait) come from the deployment's user_config
(serve/config.yaml), so they change without a restart.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from ray import serve

from pardus.deployments.batching import BacklogBatcher
from pardus.deployments.embedder.queries import (
    Embedding,
    EmbedQuery,
    PictureQuery,
    PictureVectors,
    encode_pictures,
    encode_queries,
)
from pardus.deployments.metrics import metrics
from pardus.deployments.settings import Settings


@serve.deployment(name="Embedder")  # replicas, resources, batching: serve/config.yaml
class EmbedderDeployment:
    def __init__(self, settings: dict | None = None):
        """settings: overrides on top of the PARDUS_* environment (Settings' nested shape)."""
        # In the replica only: the driver that builds the app must not load torch for it.
        from pardus.deployments.embedder.encoder import Embedder

        self.embedder = Embedder(Settings(**(settings or {})).embedder)
        self.batch_sizes: Counter = Counter()
        self.metrics = metrics()
        self.batcher = BacklogBatcher(self._encode, on_batch=self._count)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """Apply batching from user_config: max_batch_size, and batch_wait_timeout_s (how long
        an idle model waits for a batch to fill; 0, the default, never waits)."""
        self.batcher.configure(
            int(config["max_batch_size"]) if "max_batch_size" in config else None,
            float(config["batch_wait_timeout_s"]) if "batch_wait_timeout_s" in config else None)

    async def embed(self, query: EmbedQuery) -> Embedding:
        """One query in, one Embedding (a vector, or the image's error) out; batched across
        callers."""
        return await self.batcher(query)

    def _count(self, size: int) -> None:
        self.batch_sizes[size] += 1
        if self.metrics is not None:
            self.metrics.batch_size.observe(size)

    async def _encode(self, queries: list[EmbedQuery]) -> list[Embedding]:
        # in a thread: the replica keeps answering (health checks, reconfigure) meanwhile
        return await asyncio.to_thread(encode_queries, self.embedder, queries)

    async def embed_pictures(self, pictures: list[PictureQuery]) -> list[PictureVectors]:
        """Catalogue pictures added through the API (a write path: not batched across
        callers; a request's pictures go through together)."""
        return await asyncio.to_thread(encode_pictures, self.embedder, pictures)

    def dim(self) -> int:
        return self.embedder.dim

    def batch_size_histogram(self) -> dict[int, int]:
        return dict(self.batch_sizes)
