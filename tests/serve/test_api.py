"""The whole service over HTTP: a real Ray cluster running Serve, Milvus Lite, tiny models."""

from __future__ import annotations

import base64
import io
import json

import pytest

from ingest.samples import draw_product
from tests.serve.conftest import API_KEY

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
    assert body["reranked"] is False and "rerank=false" in body["rerank_note"]
    assert set(body["timings_ms"]) >= {"embed", "search", "total"}
    assert all(r["image_url"] == f"/v1/items/{r['id']}/image" for r in results)


def test_an_item_image_finds_its_own_item_first(client, sample_catalogue):
    item = catalogue_items(sample_catalogue)[3]
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
