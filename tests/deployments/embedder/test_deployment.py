"""The embedder as a Ray Serve deployment: dynamic batching, per-item errors, live reconfigure."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest

from pardus.deployments.embedder.deployment import EmbedderDeployment
from pardus.deployments.embedder.queries import EmbedQuery
from pardus.ingest.samples import draw_product


def jpeg(code: int) -> bytes:
    buf = io.BytesIO()
    draw_product("mug", "red", "dotted", code=code, size=96).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def embedder_app(serve_local, embedder_settings):
    serve = serve_local
    app = EmbedderDeployment.options(
        ray_actor_options={"num_cpus": 0.5},
        user_config={"max_batch_size": 8, "batch_wait_timeout_s": 0.2},
    ).bind({"embedder": embedder_settings.model_dump()})
    handle = serve.run(app, name="embedder-test", route_prefix=None)
    yield handle
    serve.delete("embedder-test")


def gather(handle, queries):
    async def run():
        return await asyncio.gather(*[handle.embed.remote(q) for q in queries])

    return asyncio.run(run())


def test_concurrent_queries_are_batched_and_match_direct_encoding(embedder_app, embedder):
    queries = [EmbedQuery(text="a red mug", image=jpeg(i)) if i % 2 else EmbedQuery(text=f"mug {i}")
               for i in range(16)]
    rows = gather(embedder_app, queries)
    histogram = embedder_app.batch_size_histogram.remote().result()
    assert max(histogram) > 1, histogram  # concurrent callers shared forward passes
    direct_text = embedder.encode_texts(["mug 0"]).vectors[0]
    direct_pair = embedder.encode_pairs([jpeg(1)], ["a red mug"]).vectors[0]
    assert float(np.dot(rows[0].vector, direct_text)) > 0.9999
    assert float(np.dot(rows[1].vector, direct_pair)) > 0.9999


def test_a_bad_image_fails_alone(embedder_app):
    rows = gather(embedder_app, [EmbedQuery("x", b"not an image"), EmbedQuery("y", jpeg(3))])
    assert rows[0].vector is None and rows[0].error.reason == "not_an_image"
    assert rows[1].error is None and rows[1].vector.shape == (768,)


def test_batching_follows_user_config(embedder_app, embedder_settings):
    """user_config reaches reconfigure(): with max_batch_size 1 every pass embeds one query.
    (In-place updates without a restart come with the Serve config file, not serve.run.)"""
    from ray import serve

    app = EmbedderDeployment.options(
        ray_actor_options={"num_cpus": 0.5},
        user_config={"max_batch_size": 1, "batch_wait_timeout_s": 0.0},
    ).bind({"embedder": embedder_settings.model_dump()})
    handle = serve.run(app, name="embedder-test", route_prefix=None)
    before = handle.batch_size_histogram.remote().result()
    gather(handle, [EmbedQuery(text=f"t{i}") for i in range(6)])
    after = handle.batch_size_histogram.remote().result()
    grown = {size: after[size] - before.get(size, 0) for size in after}
    assert {size: n for size, n in grown.items() if n} == {1: 6}
