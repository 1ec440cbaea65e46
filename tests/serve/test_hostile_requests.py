"""Requests built to hurt, against the live service: each gets a 4xx that names what to fix,
never a 5xx, and the service answers normally after every one."""

from __future__ import annotations

import base64
import io
import json
import socket
import time
from urllib.parse import urlsplit

import pytest
from PIL import Image

from tests.deployments.embedder.test_hostile_images import eps, grey_png
from tests.support.service import API_KEY, BODY_TIMEOUT_S, REQUEST_LIMIT

AUTH = {"Authorization": f"Bearer {API_KEY}"}
DEEP = "[" * 200_000 + "]" * 200_000


def jpeg(color: str = "red", size: int = 64) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, "JPEG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


HOSTILE = {  # name -> (method, path, request keywords, expected status, expected error code)
    "filters nested 200,000 deep (multipart)": (
        "POST", "/v1/search", {"data": {"text": "x", "filters": DEEP},
                               "files": {"image": ("a.jpg", jpeg())}}, 400, "invalid_filters"),
    "filters nested 200,000 deep (urlencoded: 1.2 MB)": (
        "POST", "/v1/search", {"data": {"text": "x", "filters": DEEP}}, 400, "invalid_form"),
    "a file part named filters": (
        "POST", "/v1/search", {"data": {"text": "x"}, "files": {"filters": ("f.json", b"{}")}},
        400, "unexpected_file"),
    "weights as a file part": (
        "POST", "/v1/search", {"data": {"text": "x"}, "files": {"weights": ("w", b"{}")}},
        400, "unexpected_file"),
    "filters nested 200,000 deep (JSON)": (
        "POST", "/v1/search", {"content": '{"text": "x", "filters": ' + DEEP + "}",
                               "headers": {"content-type": "application/json"}}, 422, None),
    "a body that is not UTF-8": (
        "POST", "/v1/search", {"content": b'{"text": "\xff\xfe"}',
                               "headers": {"content-type": "application/json"}}, 422, None),
    "a thin strip as the query picture": (
        "POST", "/v1/search", {"json": {"image": b64(grey_png(5, 1_000_000))}}, 400,
        "image_too_elongated"),
    "EPS as the query picture": (
        "POST", "/v1/search", {"json": {"image": b64(eps())}}, 400, "image_not_an_image"),
    "words-only mode for a picture": (
        "POST", "/v1/search", {"json": {"image": b64(jpeg()), "mode": "lexical"}}, 400,
        "invalid_mode"),
    "words-only mode for a picture with words": (
        "POST", "/v1/search", {"json": {"text": "a bag", "image": b64(jpeg()),
                                        "mode": "lexical"}}, 400, "invalid_mode"),
    "weights out of range": (
        "POST", "/v1/search", {"json": {"text": "x", "weights": {"dense": 7, "lexical": 1}}},
        422, "invalid_request"),
    "k as true (JSON)": ("POST", "/v1/search", {"json": {"text": "x", "k": True}}, 422,
                         "invalid_request"),
    "k as a string (JSON)": ("POST", "/v1/search", {"json": {"text": "x", "k": "5"}}, 422,
                             "invalid_request"),
    "a weight as a boolean (JSON)": (
        "POST", "/v1/search", {"json": {"text": "x", "weights": {"dense": True, "lexical": 1}}},
        422, "invalid_request"),
    "in_stock as 1 (PATCH)": ("PATCH", "/v1/items/SAMPLE00000", {
        "headers": AUTH, "json": {"in_stock": 1}}, 422, "invalid_request"),
    "every weight 0": (
        "POST", "/v1/search", {"json": {"text": "x", "weights": {"dense": 0, "lexical": 0}}},
        422, "invalid_request"),
    "an unknown mode": ("POST", "/v1/search", {"json": {"text": "x", "mode": "magic"}}, 422,
                        "invalid_request"),
    "multipart without a boundary": (
        "POST", "/v1/search", {"content": b"--x\r\n", "headers": {
            "content-type": "multipart/form-data"}}, 400, "invalid_form"),
    "too many form fields": (
        "POST", "/v1/search", {"data": {f"f{i}": "1" for i in range(40)}}, 400, "invalid_form"),
    "a title of 1025 UTF-8 bytes": (
        "POST", "/v1/items", {"headers": AUTH, "json": {"items": [
            {"id": "long-title", "title": "é" * 513, "image": b64(jpeg())}]}}, 422,
        "invalid_request"),
    "an id with a newline (path)": ("GET", "/v1/items/a%0Ab", {}, 422, "invalid_request"),
    "a picture index out of range": ("GET", "/v1/items/SAMPLE00000/image?index=5", {}, 404,
                                     "image_not_found"),
    "an image URL the server may not fetch": (
        "POST", "/v1/search", {"json": {"image_url": "file:///etc/passwd"}}, 400, None),
    "an empty API key": ("DELETE", "/v1/items/SAMPLE00000", {"headers": {"X-API-Key": ""}},
                         401, "unauthorized"),
    # byte 0xA0 (a no-break space in Latin-1): HTTP keeps it, and it is not the key
    "an API key and a no-break space": ("DELETE", "/v1/items/never-existed", {
        "headers": {"X-API-Key": API_KEY.encode() + b"\xa0"}}, 401, "unauthorized"),
    "a bearer key and a no-break space": ("DELETE", "/v1/items/never-existed", {
        "headers": {"Authorization": b"Bearer " + API_KEY.encode() + b"\xa0"}}, 401,
        "unauthorized"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_request_gets_its_4xx_and_the_service_goes_on(client, name):
    method, path, options, status, code = HOSTILE[name]
    response = client.request(method, path, **options)
    assert response.status_code == status, (name, response.status_code, response.text[:300])
    error = response.json()["error"]
    assert error["message"] and (code is None or error["code"] == code), (name, error)
    assert client.get("/healthz").status_code == 200
    after = client.post("/v1/search", json={"text": "a red mug", "k": 2, "rerank": False})
    assert after.status_code == 200 and after.json()["results"]


def test_one_request_with_the_same_picture_twice_and_an_id_twice(client):
    """Identical bytes in two items raced on one temporary file (a 500); an id given twice
    is stored once, the last one winning."""
    same, other = b64(jpeg("blue")), b64(jpeg("green"))
    items = [{"id": "twin-a", "title": "a", "image": same},
             {"id": "twin-b", "title": "b", "image": same},
             {"id": "twin-a", "title": "a again", "image": other}]
    response = client.post("/v1/items", headers=AUTH, json={"items": items})
    assert response.status_code == 200, response.text
    assert client.get("/v1/items/twin-a").json()["title"] == "a again"
    assert client.get("/v1/items/twin-b").json()["title"] == "b"
    for item_id in ("twin-a", "twin-b"):
        assert client.delete(f"/v1/items/{item_id}", headers=AUTH).status_code == 204


def test_sixteen_bit_and_palette_pictures_are_fine_queries(client):
    palette = Image.new("RGB", (90, 60), "orange").convert("P")
    for data in (png(Image.new("I;16", (300, 200), 50000)), png(palette)):
        response = client.post("/v1/search", json={"image": b64(data), "k": 2, "rerank": False})
        assert response.status_code == 200, response.text


def test_readiness_shows_codes_not_addresses(client):
    body = client.get("/readyz").json()
    assert set(body["checks"].values()) <= {"ok", "unavailable", "unreachable", "no_catalogue",
                                            "needs_reindex", "refused"}
    assert "127.0.0.1" not in json.dumps(body) and "http" not in json.dumps(body)


def chunks(total: int, size: int = 64 * 1024):
    """A body sent in chunks with no Content-Length: the limit is found while it streams."""
    sent = 0
    while sent < total:
        yield b"x" * min(size, total - sent)
        sent += size


@pytest.mark.parametrize("path", ["/v1/search", "/v1/items"])
def test_a_streamed_body_over_the_limit_is_413(client, path):
    """A body over the service's limit (tests/support/service.py) streamed without a length is
    refused as it arrives, on a route that reads its own body and on one that FastAPI
    parses."""
    response = client.post(path, content=chunks(REQUEST_LIMIT + 1_000_000), headers={
        **AUTH, "content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "payload_too_large"
    assert client.get("/healthz").status_code == 200


def test_items_nested_past_the_parser_s_limit_get_a_400(client):
    """FastAPI parses POST /v1/items: JSON too deep for Python's parser is its 400, in our
    error format, and the service goes on."""
    response = client.post("/v1/items", content='{"items": ' + DEEP + "}",
                           headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    assert response.json()["error"]["code"] == "invalid_body"
    assert client.get("/healthz").status_code == 200


SHORT_BODY = (b"POST /v1/search HTTP/1.1\r\nHost: pardus\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n" + b'{"text": "')  # 10 of the 1000 bytes


def test_a_body_shorter_than_its_content_length_gets_a_400_in_time(client, service_url):
    """uvicorn, the Ingress replica's server in direct ingress, would wait for the rest
    forever: the body timeout (tests/support/service.py) answers 400 and closes."""
    url = urlsplit(service_url)
    with socket.create_connection((url.hostname, url.port), timeout=BODY_TIMEOUT_S + 10) as raw:
        raw.sendall(SHORT_BODY)
        start, received = time.monotonic(), b""
        while chunk := raw.recv(65536):  # the socket stays open until the server closes it
            received += chunk
        waited = time.monotonic() - start
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received[:300]
    assert json.loads(body)["error"]["code"] == "incomplete_body"
    assert BODY_TIMEOUT_S - 0.5 < waited < BODY_TIMEOUT_S + 5
    assert client.get("/healthz").status_code == 200


def test_a_client_that_leaves_mid_body_leaves_the_service_well(client, service_url):
    url = urlsplit(service_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as raw:
        raw.sendall(SHORT_BODY)
        time.sleep(0.5)
    after = client.post("/v1/search", json={"text": "a red mug", "k": 2, "rerank": False})
    assert after.status_code == 200 and after.json()["results"]
