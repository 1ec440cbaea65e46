"""The whole service over HTTP: a real Ray cluster running Serve, Milvus Lite, tiny models."""

from __future__ import annotations

import base64
import io
import json

import pytest

from pardus.ingest.samples import draw_product
from tests.support.service import API_KEY, REQUEST_LIMIT

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def jpeg(kind="bag", color="yellow", pattern="leopard", seed=7, code=None, size=160) -> bytes:
    buf = io.BytesIO()
    draw_product(kind, color, pattern, seed=seed, code=code, size=size).save(buf, "JPEG")
    return buf.getvalue()


def data_url(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def catalogue_items(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]


def search(client, **body):
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_search_by_text_returns_k_ranked_results(client):
    body = search(client, text="a yellow bag", k=5, rerank=False)
    results = body["results"]
    assert len(results) == 5
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    assert [r["retrieval_rank"] for r in results] == [1, 2, 3, 4, 5]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    assert body["rerank"]["outcome"] == "off"
    assert set(body["timings_ms"]) >= {"embed", "search", "total"}
    assert all(r["image_url"] == f"/v1/items/{r['id']}/image"
               + (f"?index={r['image_index']}" if r["image_index"] else "") for r in results)


def test_an_item_image_finds_its_own_item_first(client, sample_catalogue):
    item = catalogue_items(sample_catalogue)[4]  # in stock (out of stock is demoted)
    assert item["in_stock"]
    data = (sample_catalogue / item["images"][0]["large"]).read_bytes()
    body = search(client, image=data_url(data), k=3, rerank=False)
    assert body["results"][0]["id"] == item["parent_asin"]
    assert body["results"][0]["score"] > 0.99


def test_multipart_upload_equals_json_base64(client, sample_catalogue):
    item = catalogue_items(sample_catalogue)[5]
    data = (sample_catalogue / item["images"][0]["large"]).read_bytes()
    as_json = search(client, text="like this", image=base64.b64encode(data).decode(), k=4,
                     rerank=False)
    response = client.post("/v1/search", data={"text": "like this", "k": "4", "rerank": "false"},
                           files={"image": ("q.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert [r["id"] for r in response.json()["results"]] == [r["id"] for r in as_json["results"]]


def test_composed_query_is_reranked_and_keeps_every_result(client):
    body = search(client, text="a phone case with this", image=data_url(jpeg()), k=8)
    assert body["rerank"]["outcome"] == "reranked", body["rerank"]
    results = body["results"]
    assert [r["rank"] for r in results] == list(range(1, 9))
    assert sorted(r["retrieval_rank"] for r in results) == list(range(1, 9))
    # max_candidates is 6 in the test app: the tail keeps its retrieval order
    assert [r["retrieval_rank"] for r in results[6:]] == [7, 8]
    assert {"rerank", "load_images"} <= set(body["timings_ms"])


def test_category_and_price_filters(client, sample_catalogue):
    items = catalogue_items(sample_catalogue)
    body = search(client, text="something", k=50, rerank=False, filters={"categories": ["bag"]})
    expected = {i["parent_asin"] for i in items if i["main_category"] == "bag"}
    assert {r["id"] for r in body["results"]} == expected
    prices = sorted(float(i["price"]) for i in items if i.get("price") is not None)
    cap = prices[len(prices) // 2]
    body = search(client, text="something", k=50, rerank=False, filters={"price_max": cap})
    assert body["results"] and all(r["price"] is not None and r["price"] <= cap + 1e-3
                                   for r in body["results"])


def test_add_find_get_and_delete_an_item(client):
    image = jpeg("mug", "green", "checked", seed=99, code=4242)
    item = {"id": "api-added-1", "title": "Green checked mug", "category": "mug",
            "price": 9.5, "image": data_url(image)}
    response = client.post("/v1/items", json={"items": [item]}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json() == {"upserted": ["api-added-1"], "failed": []}
    found = search(client, image=data_url(image), k=3, rerank=False)["results"]
    assert found[0]["id"] == "api-added-1" and found[0]["price"] == 9.5
    got = client.get("/v1/items/api-added-1").json()
    assert got["title"] == "Green checked mug" and got["rating"] is None
    thumb = client.get("/v1/items/api-added-1/image", params={"size": 64})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from PIL import Image

    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 64
    assert client.delete("/v1/items/api-added-1", headers=AUTH).status_code == 204
    assert client.get("/v1/items/api-added-1").status_code == 404
    again = search(client, image=data_url(image), k=3, rerank=False)["results"]
    assert "api-added-1" not in {r["id"] for r in again}


def test_a_batch_with_one_bad_image_stores_the_rest(client):
    items = [{"id": "batch-ok", "image": data_url(jpeg(code=77))},
             {"id": "batch-bad", "image": base64.b64encode(b"hello").decode()}]
    response = client.post("/v1/items", json={"items": items}, headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["upserted"] == ["batch-ok"]
    assert [(f["id"], f["code"]) for f in body["failed"]] == [("batch-bad", "image_not_an_image")]
    assert client.get("/v1/items/batch-bad").status_code == 404
    client.delete("/v1/items/batch-ok", headers=AUTH)


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": ""}])
def test_writes_need_a_valid_key(client, headers):
    item = {"id": "nokey", "image": data_url(jpeg())}
    response = client.post("/v1/items", json={"items": [item]}, headers=headers)
    assert response.status_code == 401
    assert "API key" in response.json()["error"]["message"]
    assert client.delete("/v1/items/item-0000", headers=headers).status_code == 401


def test_x_api_key_header_is_accepted(client):
    assert client.delete("/v1/items/never-existed", headers={"X-API-Key": API_KEY}).status_code == 404


def bomb_png() -> bytes:
    """A tiny file that declares 60000 x 60000 pixels."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("1", (60000, 60000)).save(buf, "PNG")
    return buf.getvalue()


BAD_SEARCHES = [
    ({"json": {}}, 400, "empty_query"),
    ({"json": {"text": "   "}}, 400, "empty_query"),
    ({"json": {"image": "%%% not base64"}}, 400, "image_not_base64"),
    ({"json": {"image": "data:image/png,rawbytes"}}, 400, "image_not_base64"),
    ({"json": {"image": base64.b64encode(b"hello").decode()}}, 400, "image_not_an_image"),
    ({"json": {"text": "x", "k": 0}}, 422, "invalid_request"),
    ({"json": {"text": "x", "k": 101}}, 422, "invalid_request"),
    ({"json": {"text": "x", "k": "ten"}}, 422, "invalid_request"),
    ({"json": {"text": "x" * 2001}}, 422, "invalid_request"),
    ({"json": {"text": "x", "colour": "red"}}, 422, "invalid_request"),
    ({"json": {"text": "x", "filters": {"price_min": 5, "price_max": 1}}}, 422, "invalid_request"),
    ({"json": {"text": "x", "filters": {"category": "bag"}}}, 422, "invalid_request"),
    ({"json": {"text": "x", "image_url": "http://example.com/a.jpg"}}, 400, "fetch_disabled"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422,
     "invalid_request"),
    ({"content": b"text=x", "headers": {"content-type": "text/plain"}}, 415,
     "unsupported_media_type"),
    ({"data": {"text": "x", "filters": "{oops"}}, 400, "invalid_filters"),
    ({"data": {"text": "x"}, "files": {"image": ("b.png", b"", "image/png")}}, 400, "image_empty"),
]


@pytest.mark.parametrize("request_kwargs,status,code", BAD_SEARCHES)
def test_bad_searches_get_a_clear_4xx(client, request_kwargs, status, code):
    response = client.post("/v1/search", **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and len(error["message"]) > 10


def test_image_limits(client):
    response = client.post("/v1/search", json={"image": data_url(bomb_png())})
    assert response.status_code == 413 and response.json()["error"]["code"] == "image_too_large"
    response = client.post("/v1/search", data={"text": "x"},
                           files={"image": ("big.bin", b"\0" * (REQUEST_LIMIT + 100_000),
                                                     "image/jpeg")})
    assert response.status_code == 413
    assert "MAX_REQUEST_BYTES" in response.json()["error"]["message"]
    item = {"id": "huge", "image": base64.b64encode(b"\0" * (REQUEST_LIMIT * 4 // 5)).decode()}
    response = client.post("/v1/items", json={"items": [item]}, headers=AUTH)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_unknown_items_and_bad_ids(client):
    assert client.get("/v1/items/no-such-item").json()["error"]["code"] == "item_not_found"
    assert client.get("/v1/items/no-such-item/image").status_code == 404
    assert client.get("/v1/items/bad%20id!").status_code == 422
    assert client.get("/v1/items/item-0000/image", params={"size": 5000}).status_code == 422
    assert client.get("/v1/nothing-here").json()["error"]["code"] == "not_found"


def test_health_readiness_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["checks"] == {"milvus": "ok", "embedder": "ok", "reranker": "ok"}
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/v1/search"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert {"/v1/items", "/v1/items/{item_id}", "/v1/items/{item_id}/image"} <= set(spec["paths"])
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_metrics_reach_rays_prometheus_endpoint(client):
    import time

    import httpx

    from tests.conftest import METRICS_PORT

    search(client, text="metrics please", k=2, rerank=False)
    deadline, names = time.monotonic() + 40, set()
    wanted = {"ray_pardus_requests_total", "ray_pardus_stage_latency_ms_bucket",
              "ray_pardus_rerank_total", "ray_pardus_embed_batch_size_bucket",
              "ray_pardus_query_cache_total"}
    while time.monotonic() < deadline and not wanted <= names:
        text = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).text
        names = {line.split("{")[0] for line in text.splitlines() if line.startswith("ray_pardus")}
        time.sleep(2)
    assert wanted <= names, names


def test_a_repeated_query_skips_the_embedder(client):
    """The ingress's query cache: the same text and picture again (whitespace aside) is not
    embedded again; another picture is. The Embedder's own batch count tells."""
    from ray import serve

    embedder = serve.get_deployment_handle("Embedder", "pardus")

    def passes() -> int:
        return sum(embedder.batch_size_histogram.remote().result().values())

    picture = data_url(jpeg(seed=4242, code=4242))
    before = passes()
    first = search(client, text="a cache test  mug", image=picture, k=3, rerank=False)
    assert passes() == before + 1
    again = search(client, text=" a cache test mug", image=picture, k=3, rerank=False)
    assert passes() == before + 1
    assert [r["id"] for r in again["results"]] == [r["id"] for r in first["results"]]
    search(client, text="a cache test mug", image=data_url(jpeg(seed=4243, code=4243)), k=3,
           rerank=False)
    assert passes() == before + 2


def test_a_picture_larger_than_grpcs_default_message_crosses_the_embedder_hop(client):
    """In Serve's throughput mode the Ingress calls the Embedder over gRPC, whose default
    message limit (4 MiB) is below the pictures a search may send (serve/ray_env.py). A 6 MiB
    picture (noise does not compress) must be embedded, not refused."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(5).integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    assert buf.tell() > 6 * 2**20
    response = client.post("/v1/search", data={"text": "like this", "k": "2", "rerank": "false"},
                           files={"image": ("big.png", buf.getvalue(), "image/png")})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["kind"] == "composed"
