"""Ray Serve deployment of the embedder: a thin shell around the model with dynamic batching.

Concurrent queries are gathered by `@serve.batch` into one forward pass; the batch size and
wait come from the deployment's user_config, so they change without a restart.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter

from ray import serve

from deployments.embedder.queries import EmbedQuery, Embedding, encode_queries
from deployments.settings import Settings
from deployments.metrics import metrics

DEFAULT_BATCHING = {"max_batch_size": 32, "batch_wait_timeout_s": 0.01}


@serve.deployment(
    name="Embedder",
    ray_actor_options={"num_cpus": 0.5},  # the Serve config sets production values
    max_ongoing_requests=128,  # must exceed max_batch_size, or batches never fill
    user_config=DEFAULT_BATCHING,
    graceful_shutdown_timeout_s=10,
)
class EmbedderDeployment:
    def __init__(self, settings: dict | None = None):
        """settings: overrides on top of the PARDUS_* environment (Settings' nested shape)."""
        import torch

        from deployments.embedder.encoder import Embedder

        resolved = Settings(**(settings or {}))
        # Ray caps OMP threads at the replica's (fractional) CPU count: give torch the cores.
        torch.set_num_threads(resolved.serving.embed_threads or os.cpu_count() or 1)
        self.embedder = Embedder(resolved.embedder)
        self.batch_sizes: Counter = Counter()
        self.metrics = metrics()

    def reconfigure(self, config: dict) -> None:
        """Apply batching settings from user_config (no restart)."""
        config = {**DEFAULT_BATCHING, **(config or {})}
        self.embed.set_max_batch_size(int(config["max_batch_size"]))
        self.embed.set_batch_wait_timeout_s(float(config["batch_wait_timeout_s"]))

    @serve.batch(**DEFAULT_BATCHING)
    async def embed(self, queries: list[EmbedQuery]) -> list[Embedding]:
        """One query in, one Embedding (a vector, or the image's error) out; batched across
        callers."""
        self.batch_sizes[len(queries)] += 1
        if self.metrics is not None:
            self.metrics.batch_size.observe(len(queries))
        # in a thread: the replica keeps answering (health checks, reconfigure) meanwhile
        return await asyncio.to_thread(encode_queries, self.embedder, queries)

    def dim(self) -> int:
        return self.embedder.dim

    def batch_size_histogram(self) -> dict[int, int]:
        return dict(self.batch_sizes)
