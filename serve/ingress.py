"""The Ingress deployment: builds the search service on the model deployments' handles and
serves the HTTP API (serve/api.py) built for this replica."""

from __future__ import annotations

from fastapi import FastAPI
from ray import serve
from ray.serve.handle import DeploymentHandle

from pardus.deployments.embedder.queries import Embedding, EmbedQuery, PictureQuery, PictureVectors
from pardus.deployments.reranker.policy import RerankRequest, RerankResult
from pardus.deployments.settings import Settings
from pardus.serve.api import create_api
from pardus.serve.factory import build_search_service
from pardus.serve.search import Models


def handle_models(embedder: DeploymentHandle, reranker: DeploymentHandle | None) -> Models:
    """The deployments as the plain async callables SearchService takes."""

    async def embed(query: EmbedQuery) -> Embedding:
        return await embedder.embed.remote(query)

    async def embed_pictures(pictures: list[PictureQuery]) -> list[PictureVectors]:
        return await embedder.embed_pictures.remote(pictures)

    async def rerank(request: RerankRequest) -> RerankResult:
        return await reranker.rerank.remote(request)

    probes = {"embedder": lambda: embedder.dim.remote()}
    if reranker is not None:
        probes["reranker"] = lambda: reranker.stats.remote()
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
        self.service = build_search_service(self.settings, handle_models(embedder, reranker))

    def __serve_build_asgi_app__(self) -> FastAPI:
        """Serve asks each replica for its app once it is constructed."""
        return create_api(self.service)
