"""The API's documentation is what the routes accept: FastAPI generates it from the models, and
the one hand-written part (POST /v1/search's JSON-or-form body) is derived from SearchRequest."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from PIL import Image

from pardus.serve.schemas import SearchRequest

FORM_EXAMPLES = {  # a valid value for every part of the search form but image_url, cursor
    "text": "a yellow bag", "k": "3", "rerank": "false", "mode": "hybrid",
    "filters": json.dumps({"price_max": 1000}), "weights": json.dumps({"dense": 1,
                                                                       "lexical": 0.5}),
    "sort": "price_asc", "facets": json.dumps(["category", "price"]),
    "refine": json.dumps({"rating": ["4-5", "3-4", "2-3"]}),
    "boosts": json.dumps({"out_of_stock": "keep"}), "min_relevance": "0.1", "debug": "true"}


@pytest.fixture(scope="module")
def openapi(service_url) -> dict:
    return httpx.get(f"{service_url}/openapi.json", timeout=30).json()


def search_body(openapi: dict) -> dict:
    return openapi["paths"]["/v1/search"]["post"]["requestBody"]["content"]


def test_the_search_body_is_documented_from_the_model(openapi):
    content = search_body(openapi)
    fields = set(SearchRequest.model_fields)
    as_json = content["application/json"]["schema"]
    as_form = content["multipart/form-data"]["schema"]
    assert set(as_json["properties"]) == fields == set(as_form["properties"])
    assert as_form["properties"]["image"] == {"type": "string", "format": "binary",
                                              "description": "The query image file."}
    assert as_json["properties"]["mode"]["anyOf"][0]["enum"] == ["auto", "dense", "lexical",
                                                                 "hybrid"]
    text = json.dumps(content)
    assert "$defs" not in text and "#/$defs" not in text  # stands alone in the operation
    assert as_json["properties"]["filters"]["anyOf"][0]["properties"]["price_max"]


def test_every_documented_form_part_is_accepted(client, openapi):
    parts = set(search_body(openapi)["multipart/form-data"]["schema"]["properties"])
    # image_url needs an allowed host; a cursor, a page before it
    assert parts - {"image", "image_url", "cursor"} == set(FORM_EXAMPLES)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "yellow").save(buf, "JPEG")
    response = client.post("/v1/search", data=FORM_EXAMPLES,
                           files={"image": ("q.jpg", buf.getvalue(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["fusion"] == "weighted" and body["sort"] == "price_asc"  # parts were read
    assert [f["name"] for f in body["facets"]] == ["category", "price"]
    assert all(r["debug"] for r in body["results"])


def test_an_undocumented_form_part_is_refused(client):
    response = client.post("/v1/search", data={"text": "x", "colour": "red"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "colour"


def test_the_other_bodies_and_answers_are_fastapi_s_own(openapi):
    items = openapi["paths"]["/v1/items"]["post"]["requestBody"]["content"]
    assert items["application/json"]["schema"] == {"$ref": "#/components/schemas/ItemsRequest"}
    search = openapi["paths"]["/v1/search"]["post"]["responses"]["200"]
    assert search["content"]["application/json"]["schema"]["$ref"].endswith("/SearchResponse")
    outcome = openapi["components"]["schemas"]["RerankInfo"]["properties"]["outcome"]
    assert outcome["$ref"].endswith("/RerankOutcome")
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["APIKeyHeader"]["in"] == "header"
