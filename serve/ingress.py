"""The Ingress deployment: builds the search service on the model deployments' handles and
serves the HTTP API (serve/api.py) built for this replica."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from pardus.deployments.embedder.queries import Embedding, EmbedQuery, PictureQuery, PictureVectors
from pardus.deployments.reranker.policy import RerankRequest, RerankResult
from pardus.deployments.settings import Settings
from pardus.serve.api import create_api
from pardus.serve.factory import build_search_service
from pardus.serve.replicas import SERVING, Counts, ReplicaWatch
from pardus.serve.search import Models


def serving_replicas(app: str) -> Counts:
    """The controller's count of serving replicas of each deployment of `app` (a blocking
    call)."""
    found = serve.status().applications.get(app)
    if found is None:
        return {}
    return {name: sum(n for state, n in deployment.replica_states.items()
                      if getattr(state, "value", state) in SERVING)
            for name, deployment in found.deployments.items()}


def handle_models(embedder: DeploymentHandle, reranker: DeploymentHandle | None,
                  watch: ReplicaWatch) -> Models:
    """The deployments as the plain async callables SearchService takes; a deployment with no
    serving replica fails them at once (NoReplica), rather than holding them in Serve's queue
    until its replacement has loaded."""
    embedder_name = embedder.deployment_name

    async def embed(query: EmbedQuery) -> Embedding:
        return await watch.call(embedder_name, lambda: embedder.embed.remote(query))

    async def embed_pictures(pictures: list[PictureQuery]) -> list[PictureVectors]:
        return await watch.call(embedder_name, lambda: embedder.embed_pictures.remote(pictures))

    async def rerank(request: RerankRequest) -> RerankResult:
        return await watch.call(reranker.deployment_name,
                                lambda: reranker.rerank.remote(request))

    probes = {"embedder": lambda: watch.call(embedder_name, lambda: embedder.dim.remote())}
    if reranker is not None:
        probes["reranker"] = lambda: watch.call(reranker.deployment_name,
                                                lambda: reranker.stats.remote())
    return Models(embed=embed, embed_pictures=embed_pictures,
                  rerank=rerank if reranker is not None else None, probes=probes)


@serve.deployment(name="Ingress")  # replicas and resources: serve/config.yaml
@serve.ingress()
class Ingress:
    def __init__(self, embedder: DeploymentHandle, reranker: DeploymentHandle | None = None,
                 settings: dict | None = None):
        """embedder, reranker: deployment handles (the reranker is used only when enabled);
        settings: overrides on top of the PARDUS_* environment."""
        self.settings = Settings(**(settings or {}))
        if not self.settings.reranker.enabled:
            reranker = None
        watch = ReplicaWatch(partial(serving_replicas, embedder.app_name),
                             self.settings.serving.replica_watch_s)
        self.service = build_search_service(self.settings,
                                            handle_models(embedder, reranker, watch))

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve asks each replica for its app once it is constructed."""
        return create_api(self.service)
