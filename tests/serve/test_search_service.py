"""SearchService in isolation: stand-in embedder/reranker callables (to force each failure),
a real Milvus Lite store; and the whole app in Serve's local testing mode (no cluster)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from deployments.embedder.images import ImageError, ImageLimits
from deployments.settings import Settings
from deployments.catalogue.items import CatalogueItem
from deployments.catalogue.store import CatalogueStore
from deployments.embedder.queries import Embedding
from serve.errors import ApiError
from deployments.catalogue.gateway import StoreGateway
from serve.images import ImageLibrary
from serve.search import Query, SearchService

DIM = 8


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    row = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return row / np.linalg.norm(row)


async def embed_text(query):
    return Embedding(vector(query.text))


async def dim():
    return DIM


@pytest.fixture()
def settings(tmp_path):
    return Settings(milvus={"uri": str(tmp_path / "unit.db"), "lite_server": False,
                            "index_type": "FLAT", "collection": "unit", "timeout_s": 3},
                    reranker={"timeout_s": 0.2}, serving={"image_root": str(tmp_path),
                                                          "embed_timeout_s": 1})


@pytest.fixture()
def catalogue(settings):
    """Six items whose vectors are those of their titles."""
    store = CatalogueStore(settings.milvus, DIM)
    store.ensure_collection()
    titles = [f"item {i}" for i in range(6)]
    store.upsert([CatalogueItem(id=f"i{i}", title=t, image=f"missing-{i}.jpg")
                  for i, t in enumerate(titles)], np.stack([vector(t) for t in titles]))
    store.flush()
    store.close()
    return titles


def service(settings, embed=embed_text, rerank=None) -> SearchService:
    store = StoreGateway(settings.milvus, dim)
    images = ImageLibrary(settings.serving.image_root, ImageLimits())
    return SearchService(settings, embed, rerank, store, images)


def run(coro):
    return asyncio.run(coro)


def test_retrieval_order_and_rerank_order(settings, catalogue):
    async def reverse(text, image, candidates):
        assert all(data is None for _, data in candidates)  # unreadable images: grey cells
        return {"order": [cid for cid, _ in candidates][::-1], "reranked": True,
                "reason": "because", "caption": None}

    plain = run(service(settings).search(Query(text="item 2", k=4, rerank=False)))
    assert plain.results[0].id == "i2" and plain.results[0].score > 0.999
    assert plain.reranked is False and "rerank=false" in plain.rerank_note

    body = run(service(settings, rerank=reverse).search(Query(text="item 2", k=4)))
    assert body.reranked and body.reason == "because"
    assert [r.id for r in body.results] == [r.id for r in plain.results][::-1]
    assert [r.retrieval_rank for r in body.results] == [4, 3, 2, 1]
    assert [r.rank for r in body.results] == [1, 2, 3, 4]


@pytest.mark.parametrize("behaviour,note", [
    ("raise", "unavailable"), ("hang", "unavailable"), ("fallback", "unusable answer"),
    ("not-a-permutation", "unusable"),
])
def test_a_failing_reranker_degrades_to_retrieval_order(settings, catalogue, behaviour, note):
    async def rerank(text, image, candidates):
        if behaviour == "raise":
            raise RuntimeError("replica died")
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "not-a-permutation":
            return {"order": [candidates[0][0]] * len(candidates), "reranked": True}
        return {"order": [cid for cid, _ in candidates], "reranked": False,
                "fallback": "unusable answer: not JSON", "reason": ""}

    svc = service(settings, rerank=rerank)
    svc.rerank_grace_s = 0.1
    body = run(svc.search(Query(text="item 1", k=3)))
    assert body.reranked is False and note in body.rerank_note
    assert [r.retrieval_rank for r in body.results] == [1, 2, 3]


def test_embedder_failures_become_clear_errors(settings, catalogue):
    async def down(query):
        raise RuntimeError("actor died")

    async def slow(query):
        await asyncio.sleep(3600)

    async def bad_image(query):
        return Embedding(None, error=ImageError("not_an_image", "not an image"))

    async def bomb(query):
        return Embedding(None, error=ImageError("too_large", "too many pixels"))

    for embed, status, code in [(down, 503, "embedder_unavailable"),
                                (slow, 503, "embedder_timeout"),
                                (bad_image, 400, "image_not_an_image"),
                                (bomb, 413, "image_too_large")]:
        with pytest.raises(ApiError) as caught:
            run(service(settings, embed=embed).search(Query(text="x", image=b"..")))
        assert (caught.value.status, caught.value.code) == (status, code)
        assert (caught.value.retry_after is not None) == (status == 503)


def test_an_unreachable_store_is_503_with_retry_after(settings):
    settings.milvus.uri = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(ApiError) as caught:
        run(service(settings).search(Query(text="x")))
    assert caught.value.status == 503 and caught.value.code == "store_unavailable"
    assert caught.value.retry_after == settings.serving.retry_after_s


LOCAL_MODE = """
import json, sys
from ray import serve
from serve.app import build_app
handle = serve.run(build_app({"settings": json.loads(sys.argv[1])}), _local_testing_mode=True)
print(json.dumps({"health": handle.healthz.remote().result().status,
                  "ready": handle.readyz.remote().result()}))
"""


def test_the_app_in_local_testing_mode(tmp_path, embedder_settings):
    """The builder, the ingress and the embedder deployment in one process, no cluster. In a
    child process: local testing mode leaves the ingress class unpicklable for later
    serve.run calls in the same process (Ray 2.60)."""
    overrides = {"embedder": embedder_settings.model_dump(),
                 "milvus": {"uri": str(tmp_path / "local.db"), "lite_server": False},
                 "reranker": {"enabled": False}, "serving": {"image_root": str(tmp_path)}}
    result = subprocess.run([sys.executable, "-c", LOCAL_MODE, json.dumps(overrides)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer == {"health": "ok",
                      "ready": {"ready": True, "checks": {"milvus": "ok", "embedder": "ok"}}}

