"""The results page's API over HTTP on the live service: facets, sorts, cursors, attribute
updates and similar items, with the errors a client gets for each mistake."""

from __future__ import annotations

import json

import pytest

from tests.support.service import API_KEY

AUTH = {"Authorization": f"Bearer {API_KEY}"}
PLAIN = {"text": "a bag", "k": 5, "rerank": False}


def search(client, **body):
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_facets_count_what_the_pages_go_through(client):
    body = search(client, **PLAIN, facets=["category", "brand", "price", "rating"])
    facets = {facet["name"]: facet["values"] for facet in body["facets"]}
    assert set(facets) == {"category", "brand", "price", "rating"}
    assert sum(v["count"] for v in facets["category"]) == body["relevant"] == body["total"]
    assert body["currency"] == "USD" and body["window"] >= body["relevant"]
    brand = facets["brand"][0]["value"]
    picked = search(client, **PLAIN, facets=["brand", "category"], refine={"brand": [brand]})
    assert picked["total"] == facets["brand"][0]["count"]
    assert all(r["brand"] == brand for r in picked["results"])
    again = {f["name"]: f["values"] for f in picked["facets"]}
    assert again["brand"] == [dict(v, selected=v["value"] == brand) for v in facets["brand"]]
    assert sum(v["count"] for v in again["category"]) == picked["total"]


def test_a_form_carries_facets_and_picks_as_json_text(client):
    as_json = search(client, **PLAIN, facets=["category"], refine={"price": ["25-50"]})
    response = client.post("/v1/search", data={
        "text": "a bag", "k": "5", "rerank": "false", "facets": json.dumps(["category"]),
        "refine": json.dumps({"price": ["25-50"]})})
    assert response.status_code == 200, response.text
    assert response.json()["facets"] == as_json["facets"]
    assert [r["id"] for r in response.json()["results"]] == [r["id"] for r in as_json["results"]]


def test_sorts_and_cursors_over_http(client):
    first = search(client, **PLAIN, sort="price_asc")
    assert first["next"] and first["sort"] == "price_asc"
    second = search(client, **PLAIN, sort="price_asc", cursor=first["next"])
    prices = [r["price"] for r in first["results"] + second["results"] if r["price"] is not None]
    assert prices == sorted(prices)
    assert not {r["id"] for r in first["results"]} & {r["id"] for r in second["results"]}
    assert [r["retrieval_rank"] for r in second["results"]] == list(range(6, 11))


@pytest.mark.parametrize(("body", "code"), [
    ({"sort": "cheapest"}, "invalid_request"),
    ({"facets": ["colour"]}, "invalid_request"),
    ({"refine": {"price": ["cheap"]}}, "invalid_refinement"),
    ({"refine": {"colour": ["red"]}}, "invalid_request"),
    ({"cursor": "not-a-cursor"}, "invalid_cursor"),
    ({"min_relevance": 2}, "invalid_request"),
])
def test_mistakes_get_their_4xx_and_name_what_is_allowed(client, body, code):
    response = client.post("/v1/search", json={**PLAIN, **body})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    if "sort" in body:
        assert "price_asc" in error["message"] and "newest" in error["message"]
    if "facets" in body:
        assert "category" in error["message"] and "rating" in error["message"]


def test_a_cursor_of_another_search_is_refused(client):
    first = search(client, **PLAIN)
    response = client.post("/v1/search", json={**PLAIN, "text": "a mug",
                                               "cursor": first["next"]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "cursor_mismatch"


def test_patch_changes_attributes_without_embedding(client):
    item = client.get("/v1/items/SAMPLE00005").json()
    assert client.patch("/v1/items/SAMPLE00005", json={"in_stock": False}).status_code == 401
    for bad in ({}, {"in_stock": None}, {"title": "new"}, {"popularity": -1}):
        response = client.patch("/v1/items/SAMPLE00005", json=bad, headers=AUTH)
        assert response.status_code == 422, (bad, response.text)
    missing = client.patch("/v1/items/NOPE", json={"in_stock": False}, headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "item_not_found"
    try:
        changed = client.patch("/v1/items/SAMPLE00005", headers=AUTH,
                               json={"in_stock": False, "popularity": 9999, "price": 1.5})
        assert changed.status_code == 200, changed.text
        assert (changed.json()["in_stock"], changed.json()["popularity"],
                changed.json()["price"]) == (False, 9999, 1.5)
        assert client.get("/v1/items/SAMPLE00005").json()["in_stock"] is False
        hidden = search(client, text=item["title"], k=24, rerank=False,
                        boosts={"out_of_stock": "exclude"})
        assert "SAMPLE00005" not in {r["id"] for r in hidden["results"]}
    finally:  # the session's catalogue is shared: put it back
        client.patch("/v1/items/SAMPLE00005", headers=AUTH, json={
            "in_stock": item["in_stock"], "popularity": item["popularity"],
            "price": item["price"]})


def test_similar_items_page_on_and_leave_the_item_out(client):
    first = client.get("/v1/items/SAMPLE00002/similar", params={"k": 5})
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["results"] and "SAMPLE00002" not in {r["id"] for r in body["results"]}
    assert body["kind"] == "image" and body["rerank"]["outcome"] == "off"
    second = client.get("/v1/items/SAMPLE00002/similar",
                        params={"k": 5, "cursor": body["next"]}).json()
    assert not {r["id"] for r in body["results"]} & {r["id"] for r in second["results"]}
    bags = client.get("/v1/items/SAMPLE00002/similar",
                      params={"k": 24, "category": body["results"][0]["category"]}).json()
    assert {r["category"] for r in bags["results"]} == {body["results"][0]["category"]}
    missing = client.get("/v1/items/NOPE/similar")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "item_not_found"
