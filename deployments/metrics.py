"""Prometheus metrics of the service, exported by Ray on every node's metrics port.

Ray's own exporter (not a /metrics route on one replica) is what aggregates across replicas
and nodes: Ray serves them at http://<node>:<metrics_export_port>/metrics with the prefix
`ray_`, next to Serve's built-in request metrics, and KubeRay's PodMonitor scrapes it there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pardus.deployments.reranker.policy import RerankResult

LATENCY_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000]
BATCH_SIZES = [1, 2, 4, 8, 16, 32, 64, 128]


class ServiceMetrics:
    """The metrics one process records (ray.util.metrics needs a Ray worker to export)."""

    def __init__(self):
        # Ray on first use: the service also runs in process without Ray (and no metrics).
        from ray.util.metrics import Counter, Histogram

        self.requests = Counter(
            "pardus_requests_total", description="API requests by endpoint and status.",
            tag_keys=("endpoint", "status"))
        self.stage_ms = Histogram(
            "pardus_stage_latency_ms", description="Milliseconds per search stage.",
            boundaries=LATENCY_MS, tag_keys=("stage",))
        self.rerank = Counter(
            "pardus_rerank_total", description="Searches by rerank outcome (reranked, or why "
            "not: off, disabled, too_few, timeout, unusable, error, unavailable).",
            tag_keys=("outcome",))
        self.rerank_model_calls = Counter(
            "pardus_rerank_model_calls_total", description="Calls to the reranker's model.")
        self.rerank_repairs = Counter(
            "pardus_rerank_repairs_total", description="Fixes made to the model's answers.")
        self.captions = Counter(
            "pardus_caption_cache_total", description="Query-image captions by cache result.",
            tag_keys=("result",))
        self.query_cache = Counter(
            "pardus_query_cache_total", description="Query embeddings by cache result (hit; "
            "joined: shared with the same query on its way; miss: embedded).",
            tag_keys=("result",))
        self.result_cache = Counter(
            "pardus_result_cache_total", description="Search answers by result cache result "
            "(hit, miss), when the cache is on.", tag_keys=("result",))
        self.batch_size = Histogram(
            "pardus_embed_batch_size", description="Queries per embedder forward pass.",
            boundaries=BATCH_SIZES)

    def request(self, endpoint: str, status: int) -> None:
        self.requests.inc(1, tags={"endpoint": endpoint, "status": str(status)})

    def timings(self, timings_ms: dict[str, float]) -> None:
        for stage, ms in timings_ms.items():
            self.stage_ms.observe(ms, tags={"stage": stage})

    def reranked(self, result: RerankResult, had_image: bool) -> None:
        self.rerank.inc(1, tags={"outcome": result.outcome.value})
        if result.model_calls:
            self.rerank_model_calls.inc(result.model_calls)
        if result.repairs:
            self.rerank_repairs.inc(len(result.repairs))
        if had_image and result.model_calls:
            self.captions.inc(1, tags={"result": "hit" if result.caption_cached else "miss"})


@lru_cache(maxsize=1)
def metrics() -> ServiceMetrics | None:
    """This process's metrics, or None outside a Ray worker (plain unit tests)."""
    # Ray on first use: the service also runs in process without Ray (and no metrics).
    import ray

    if not ray.is_initialized():
        return None
    return ServiceMetrics()
