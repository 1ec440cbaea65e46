"""The one place a SearchService is built from settings: the ingress, the CLI, the benchmarks
and the tests all come through here, so a setting reaches every path or none."""

from __future__ import annotations

import asyncio

from pardus.deployments.catalogue.gateway import StoreGateway
from pardus.deployments.embedder.checkpoint import embedding_dim
from pardus.deployments.embedder.images import ImageLimits
from pardus.deployments.embedder.queries import (
    Embedding,
    EmbedQuery,
    PictureQuery,
    PictureVectors,
    encode_pictures,
    encode_queries,
)
from pardus.deployments.settings import Settings
from pardus.serve.images import ImageLibrary
from pardus.serve.search import Models, SearchService


def build_search_service(settings: Settings, models: Models) -> SearchService:
    """The service over the configured store and image root, calling `models`."""
    store = StoreGateway(settings.milvus, embedding_dim(settings.embedder),
                         create=settings.serving.item_writes)
    images = ImageLibrary(settings.serving.image_root, ImageLimits.of(settings.embedder),
                          settings.ingest.allow_buckets)
    return SearchService(settings, models, store, images)


def local_models(settings: Settings) -> Models:
    """The embedder loaded in this process (no Serve, no reranker): in-process search."""
    # Only here: the ingress builds its service through this module and holds no model.
    from pardus.deployments.embedder.encoder import Embedder

    embedder = Embedder(settings.embedder)

    async def embed(query: EmbedQuery) -> Embedding:
        return (await asyncio.to_thread(encode_queries, embedder, [query]))[0]

    async def embed_pictures(pictures: list[PictureQuery]) -> list[PictureVectors]:
        return await asyncio.to_thread(encode_pictures, embedder, pictures)

    async def loaded() -> int:
        return embedder.dim

    return Models(embed=embed, embed_pictures=embed_pictures, probes={"embedder": loaded})
