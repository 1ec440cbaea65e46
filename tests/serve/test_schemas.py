"""The API's schemas (serve/schemas.py) as the routes apply them, in process: the item bodies
FastAPI parses are typed strictly."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from pardus.serve.schemas import ItemPatch, ItemsRequest
from tests.support.offline import KEY, offline_api

ITEM = {"id": "a", "image": "eA=="}


@pytest.fixture()
def http(tmp_path):
    with TestClient(offline_api(tmp_path), headers={"X-API-Key": KEY}) as client:
        yield client


@pytest.mark.parametrize(("field", "value"), [
    ("price", True), ("price", "5"), ("rating", "4.5"), ("in_stock", 1), ("in_stock", "true"),
    ("popularity", False), ("added_at", "1700000000"), ("added_at", 1.0e9), ("added_at", True)])
def test_item_fields_take_json_types_strictly(http, field, value):
    added = http.post("/v1/items", json={"items": [{**ITEM, field: value}]})
    assert added.status_code == 422, added.text
    assert added.json()["error"]["field"] == f"items.0.{field}"
    patched = http.patch("/v1/items/a", json={field: value})
    assert patched.status_code == 422, patched.text
    error = patched.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field), error


def test_item_numbers_may_be_whole_where_a_float_is_asked():
    """What FastAPI does with a parsed JSON body: the model validated from Python objects."""
    item = ItemsRequest.model_validate({"items": [{**ITEM, "price": 5, "rating": 4,
                                                   "popularity": 0, "added_at": 1}]}).items[0]
    assert (item.price, item.rating, item.popularity, item.added_at) == (5.0, 4.0, 0.0, 1)
    assert ItemPatch.model_validate({"price": 12, "in_stock": False}).changes() == {
        "price": 12.0, "in_stock": False}


@pytest.mark.parametrize("send", [
    {"json": {"text": "x", "weights": {"dense": 0, "lexical": 0}}},
    {"json": {"text": "x", "weights": {"dense": 0.0, "lexical": 0.0}, "mode": "hybrid"}},
    {"data": {"text": "x", "weights": '{"dense": 0, "lexical": 0}'}}])
def test_weights_all_zero_are_refused(http, send):
    """They scored every product 0."""
    response = http.post("/v1/search", **send)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", "weights"), error
    assert "at least one weight must be above 0" in error["message"]
