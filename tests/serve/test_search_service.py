"""SearchService in isolation: stand-in embedder/reranker callables (to force each failure),
a real Milvus Lite store; and its HTTP API in process (no Serve)."""

from __future__ import annotations

import asyncio
import hashlib

import numpy as np
import pytest
from fastapi.testclient import TestClient

from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.store import CatalogueStore, Picture
from pardus.deployments.embedder.images import ImageError, ImageTooLarge
from pardus.deployments.embedder.queries import Embedding, PictureVectors
from pardus.deployments.errors import BadQuery, NotFound, PardusError, Refused, Unavailable
from pardus.deployments.names import Mode, RerankOutcome
from pardus.deployments.reranker.policy import RerankRequest, RerankResult
from pardus.deployments.settings import Settings
from pardus.serve.api import create_api
from pardus.serve.errors import error_response, status_of
from pardus.serve.factory import build_search_service
from pardus.serve.search import Models, Query, SearchService

DIM = 8


def vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    row = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return row / np.linalg.norm(row)


async def embed_text(query):
    return Embedding(vector(query.text))


async def loaded():
    return DIM


async def embed_pictures(pictures):
    return [PictureVectors(vector(p.title), vector(p.title)) for p in pictures]


@pytest.fixture()
def settings(tmp_path):
    # dense, no cut-off: these tests are about the stages around retrieval (scores are cosines
    # of random vectors)
    no_floor = {"dense": 0, "lexical": 0, "rrf": 0, "weighted": 0}
    return Settings(embedder={"dim": DIM}, search={"mode": "dense", "relevance_floor": no_floor},
                    milvus={"uri": str(tmp_path / "unit.db"), "lite_server": False,
                            "index_type": "FLAT", "collection": "unit", "timeout_s": 3},
                    reranker={"timeout_s": 0.2}, serving={"image_root": str(tmp_path),
                                                          "embed_timeout_s": 1})


@pytest.fixture()
def catalogue(settings):
    """Six items whose vectors are those of their titles."""
    store = CatalogueStore(settings.milvus, DIM)
    store.ensure_collection()
    titles = [f"item {i}" for i in range(6)]
    store.upsert([Picture(CatalogueItem(id=f"i{i}", title=t, images=(f"missing-{i}.jpg",)), 0,
                          vector(t), vector(t)) for i, t in enumerate(titles)])
    store.flush()
    store.close()
    return titles


def service(settings, embed=embed_text, rerank=None) -> SearchService:
    return build_search_service(settings, Models(embed, embed_pictures, rerank,
                                                 {"embedder": loaded}))


def run(coro):
    return asyncio.run(coro)


def test_retrieval_order_and_rerank_order(settings, catalogue):
    async def reverse(request: RerankRequest) -> RerankResult:
        assert all(data is None for _, data in request.candidates)  # unreadable: grey cells
        # the search owns the deadline and hands the reranker what is left of it
        assert 0 < request.budget_s <= settings.reranker.timeout_s
        return RerankResult([cid for cid, _ in request.candidates][::-1],
                            RerankOutcome.RERANKED, reason="because", model_calls=1,
                            repairs=["no reason given"], seconds=0.01)

    plain = run(service(settings).search(Query(text="item 2", k=4, rerank=False)))
    assert plain.results[0].id == "i2" and plain.results[0].score > 0.999
    assert plain.rerank.outcome is RerankOutcome.OFF

    body = run(service(settings, rerank=reverse).search(Query(text="item 2", k=4)))
    assert body.rerank.outcome is RerankOutcome.RERANKED and body.reason == "because"
    assert [r.id for r in body.results] == [r.id for r in plain.results][::-1]
    assert [r.retrieval_rank for r in body.results] == [4, 3, 2, 1]
    assert [r.rank for r in body.results] == [1, 2, 3, 4]
    assert body.rerank.model_calls == 1 and body.rerank.repairs == ["no reason given"]
    assert body.timings_ms["rerank_model"] == 10.0


def test_only_the_head_is_reranked_and_the_tail_keeps_its_order(settings, catalogue):
    settings.reranker.max_candidates = 3
    seen = []

    async def reverse(request: RerankRequest) -> RerankResult:
        seen.append([cid for cid, _ in request.candidates])
        return RerankResult(seen[-1][::-1], RerankOutcome.RERANKED)

    body = run(service(settings, rerank=reverse).search(Query(text="item 0", k=6)))
    assert len(seen[0]) == 3
    assert [r.retrieval_rank for r in body.results] == [3, 2, 1, 4, 5, 6]


@pytest.mark.parametrize("behaviour,outcome", [
    ("raise", "unavailable"), ("hang", "timeout"), ("unusable", "unusable"),
    ("not-a-permutation", "unusable"), ("invented", "unusable"),
])
def test_a_failing_reranker_degrades_to_retrieval_order(settings, catalogue, behaviour, outcome):
    async def rerank(request: RerankRequest) -> RerankResult:
        ids = [cid for cid, _ in request.candidates]
        if behaviour == "raise":
            raise RuntimeError("replica died")
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "not-a-permutation":
            return RerankResult([ids[0]] * len(ids), RerankOutcome.RERANKED)
        if behaviour == "invented":
            return RerankResult([*ids[1:], "not-a-hit"], RerankOutcome.RERANKED)
        return RerankResult.kept(ids, RerankOutcome.UNUSABLE)

    body = run(service(settings, rerank=rerank).search(Query(text="item 1", k=3)))
    assert body.rerank.outcome == outcome
    assert "replica died" not in body.model_dump_json()  # a stable outcome; details: the log
    assert [r.retrieval_rank for r in body.results] == [1, 2, 3]


def test_fewer_than_two_results_are_not_sent_to_the_reranker(settings, catalogue):
    async def never(request):
        raise AssertionError("called")

    body = run(service(settings, rerank=never).search(Query(text="item 1", k=1)))
    assert body.rerank.outcome == "too_few" and len(body.results) == 1


def test_embedder_failures_become_clear_errors(settings, catalogue):
    async def down(query):
        raise RuntimeError("actor died")

    async def slow(query):
        await asyncio.sleep(3600)

    async def bad_image(query):
        return Embedding(None, error=ImageError("not_an_image", "not an image"))

    async def bomb(query):
        return Embedding(None, error=ImageTooLarge("too many pixels"))

    for embed, status, code in [(down, 503, "embedder_unavailable"),
                                (slow, 503, "embedder_timeout"),
                                (bad_image, 400, "image_not_an_image"),
                                (bomb, 413, "image_too_large")]:
        with pytest.raises(PardusError) as caught:
            run(service(settings, embed=embed).search(Query(text="x", image=b"..")))
        assert (status_of(caught.value), caught.value.code) == (status, code)
        assert isinstance(caught.value, Unavailable) == (status == 503)
        if status == 503:
            assert caught.value.retry_after_s == settings.serving.retry_after_s


def test_thumbnails_come_from_the_cache_before_the_store_and_go_with_the_item(settings, tmp_path):
    from PIL import Image

    Image.new("RGB", (300, 200), "red").save(tmp_path / "red.jpg")
    store = CatalogueStore(settings.milvus, DIM)
    store.ensure_collection()
    store.upsert([Picture(CatalogueItem(id="red", title="red", images=("red.jpg",)), 0,
                          vector("red"), vector("red"))])
    store.close()
    svc, asked = service(settings), []
    real_get = svc.store.get

    async def counted_get(ids):
        asked.append(ids)
        return await real_get(ids)

    svc.store.get = counted_get

    async def scenario():
        first = await svc.thumbnail("red", 100)
        assert await svc.thumbnail("red", 120) == first  # both sizes snap to 128: cached
        assert await svc.thumbnail("red", 128) == first and len(asked) == 1
        assert len(await svc.thumbnail("red", 300)) != len(first) and len(asked) == 2
        await svc.delete("red")
        with pytest.raises(NotFound) as info:
            await svc.thumbnail("red", 100)
        assert status_of(info.value) == 404

    run(scenario())


def test_an_unreachable_store_is_503_with_retry_after(settings):
    settings.milvus.uri = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(Unavailable) as caught:
        run(service(settings).search(Query(text="x")))
    assert status_of(caught.value) == 503 and caught.value.code == "store_unavailable"
    answer = error_response(caught.value, settings.serving.retry_after_s)
    assert answer.headers["retry-after"] == str(settings.serving.retry_after_s)


def test_the_http_api_over_the_service(settings, catalogue):
    """The routes (serve/api.py) over the real service and store, in process: the per-replica
    app carries its own settings (CORS here) and the one error format."""
    settings.serving.cors_origins = ["https://shop.example"]
    api = create_api(service(settings))
    with TestClient(api) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        ready = http.get("/readyz").json()
        assert ready == {"ready": True, "checks": {"milvus": "ok", "embedder": "ok"}}
        found = http.post("/v1/search", json={"text": "item 3", "k": 2, "rerank": False})
        assert found.status_code == 200 and found.json()["results"][0]["id"] == "i3"
        empty = http.post("/v1/search", json={"text": " "})
        assert empty.status_code == 400 and empty.json()["error"]["code"] == "empty_query"
        cors = http.options("/v1/search", headers={"Origin": "https://shop.example",
                                                   "Access-Control-Request-Method": "POST"})
        assert cors.headers["access-control-allow-origin"] == "https://shop.example"
    other = create_api(service(Settings(**{**settings.model_dump(), "serving": {
        **settings.serving.model_dump(), "cors_origins": []}})))
    with TestClient(other) as http:  # a second app: no CORS leaked from the first
        cors = http.options("/v1/search", headers={"Origin": "https://shop.example",
                                                   "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in cors.headers


def test_the_query_kind_picks_the_plan_and_the_mode_is_checked(settings, catalogue):
    settings.search.mode = "auto"
    text = run(service(settings).search(Query(text="item 4", k=3, rerank=False)))
    assert (text.kind, text.mode, text.fusion) == ("text", "hybrid", "rrf")
    assert text.results[0].id == "i4"

    async def never(query):
        raise AssertionError("a lexical search embeds nothing")

    lexical = run(service(settings, embed=never).search(
        Query(text="item 5", k=3, rerank=False, mode=Mode.LEXICAL)))
    assert lexical.mode == "lexical" and lexical.results[0].id == "i5"
    assert "embed" not in lexical.timings_ms
    with pytest.raises(BadQuery) as caught:
        run(service(settings).search(Query(image=b"..", mode=Mode.LEXICAL)))
    assert status_of(caught.value) == 400 and caught.value.code == "invalid_mode"


def test_a_read_only_service_refuses_writes_and_creates_nothing(tmp_path):
    settings = Settings(embedder={"dim": DIM}, serving={"item_writes": False,
                                                        "image_root": str(tmp_path)},
                        milvus={"uri": str(tmp_path / "ro.db"), "lite_server": False,
                                "collection": "readonly"})
    api = create_api(service(settings))
    with TestClient(api) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["milvus"] == "no_catalogue"
        assert http.post("/v1/search", json={"text": "x"}).json()["results"] == []
        added = http.post("/v1/items", json={"items": [{"id": "a", "image": "eA=="}]})
        assert added.status_code == 403 and added.json()["error"]["code"] == "writes_disabled"
        assert http.delete("/v1/items/a").status_code == 403
    store = CatalogueStore(settings.milvus)
    assert store.live() is None and store.versions() == []  # nothing was created


def test_a_refusal_a_retry_would_meet_again_is_no_503(settings, catalogue):
    """An older Pardus collection under the name: 500 with what to do, no Retry-After."""
    from pymilvus import MilvusClient

    client = MilvusClient(settings.milvus.uri)
    client.create_collection("older", dimension=DIM)  # a single-vector collection
    settings.milvus.collection = "older"
    with pytest.raises(Refused) as caught:
        run(service(settings).search(Query(text="x")))
    assert (status_of(caught.value), caught.value.code) == (500, "store_refused")
    assert "retry-after" not in error_response(caught.value, 5).headers
    assert "pardus ingest" in caught.value.message


def test_a_killed_shared_lite_server_is_restarted_without_an_error(tmp_path):
    """The shared loopback server of a local catalogue dies (OOM, a kill): the next call finds
    the connection gone, starts a server on the same file, and answers."""
    import os
    import signal

    from pardus.deployments.catalogue import lite_server

    path = tmp_path / "shared.db"
    settings = Settings(embedder={"dim": DIM}, search={"mode": "dense"},
                        milvus={"uri": str(path), "collection": "shared", "timeout_s": 10},
                        serving={"image_root": str(tmp_path)})
    store = CatalogueStore(settings.milvus, DIM)
    store.ensure_collection()
    store.upsert([Picture(CatalogueItem(id="one", title="one", images=("1.jpg",)), 0,
                          vector("one"), vector("one"))])
    store.close()
    svc = service(settings)

    async def twice():
        first = await svc.search(Query(text="one", k=1, rerank=False))
        os.kill(lite_server.running(path).pid, signal.SIGKILL)
        second = await svc.search(Query(text="one", k=1, rerank=False))
        await svc.store.close()
        return first, second

    try:
        first, second = run(twice())
        assert first.results[0].id == second.results[0].id == "one"
    finally:
        lite_server.stop(path)


def test_the_result_cache_answers_repeats_and_forgets_on_a_write(settings, catalogue):
    """Off by default; on, a repeat is answered without the embedder or Milvus, another k or
    filter is not a repeat, a degraded (unreranked for a fault) answer is never kept, and a
    write through this replica clears it."""
    calls = []

    async def counting(query):
        calls.append(query.text)
        return Embedding(vector(query.text))

    assert service(settings).results is None  # off by default
    settings.serving.result_cache_s = 60
    settings.serving.query_cache_mb = 0  # each search that is not a repeat embeds: counted
    searcher = service(settings, embed=counting)

    async def go():
        first = await searcher.search(Query(text="item 3", k=3, rerank=False))
        again = await searcher.search(Query(text="item 3", k=3, rerank=False))
        assert len(calls) == 1 and "result_cache" in again.timings_ms
        assert [r.id for r in again.results] == [r.id for r in first.results]
        await searcher.search(Query(text="item 3", k=2, rerank=False))
        assert len(calls) == 2
        await searcher.patch("i3", {"price": 9.5})
        after = await searcher.search(Query(text="item 3", k=3, rerank=False))
        assert len(calls) == 3 and after.results[0].price == 9.5
        await searcher.store.close()

    run(go())


def test_a_degraded_answer_is_not_kept(settings, catalogue):
    settings.serving.result_cache_s = 60
    settings.serving.query_cache_mb = 0
    calls = []

    async def counting(query):
        calls.append(query.text)
        return Embedding(vector(query.text))

    async def slow(request: RerankRequest) -> RerankResult:
        await asyncio.sleep(5)  # past the 0.2 s rerank deadline

    searcher = service(settings, embed=counting, rerank=slow)

    async def go():
        for _ in range(2):
            answer = await searcher.search(Query(text="item 1", k=3))
            assert answer.rerank.outcome is RerankOutcome.TIMEOUT
        await searcher.store.close()

    run(go())
    assert len(calls) == 2
