"""Request bodies (serve/bodies.py), in process: a body that stops short is answered 400 within
the body timeout, a client that leaves mid-body ends its request quietly; JSON is typed
strictly, a form's text fields are parsed as their fields' types."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time
from typing import Annotated

import pytest
import uvicorn
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from pardus.serve.bodies import SearchBody, search_body
from pardus.serve.errors import install_handlers
from tests.support.offline import KEY, call, http_scope, offline_api

TIMEOUT_S = 0.3
JSON_START = b'{"text": "a red'
FORM_START = b'--x\r\nContent-Disposition: form-data; name="text"\r\n\r\na red'
ROUTES = {  # how a route reads its body: name -> (method, path, headers, the body's start)
    "search as JSON (read by the route)": ("POST", "/v1/search", {
        "content-type": "application/json"}, JSON_START),
    "search as a form (Starlette's parser)": ("POST", "/v1/search", {
        "content-type": "multipart/form-data; boundary=x"}, FORM_START),
    "items (FastAPI's parser)": ("POST", "/v1/items", {
        "content-type": "application/json", "x-api-key": KEY}, JSON_START),
}


def short(start: bytes) -> list[dict]:
    """The first piece of a body of 1000 bytes."""
    return [{"type": "http.request", "body": start, "more_body": True}]


def answer(sent: list[dict]) -> tuple[int, dict, dict]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, json.loads(body)


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_body_shorter_than_its_length_gets_a_400_within_the_timeout(tmp_path, route):
    method, path, headers, begun = ROUTES[route]
    api = offline_api(tmp_path, body_timeout_s=TIMEOUT_S)
    start = time.monotonic()
    sent = asyncio.run(call(api, method, path, {**headers, "content-length": "1000"},
                            short(begun), within_s=TIMEOUT_S + 5))
    assert time.monotonic() - start < TIMEOUT_S + 2
    status, response_headers, body = answer(sent)
    assert status == 400 and body["error"]["code"] == "incomplete_body", body
    assert f"{len(begun)} of the 1000" in body["error"]["message"]
    assert "PARDUS_SERVING__BODY_TIMEOUT_S" in body["error"]["message"]
    assert response_headers["connection"] == "close"  # the rest of the body may still come
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


@pytest.mark.parametrize("route", list(ROUTES))
def test_a_client_that_leaves_mid_body_ends_quietly(tmp_path, route, caplog):
    """No ERROR, no traceback, no answer to nobody: the app saw the client go."""
    method, path, headers, begun = ROUTES[route]
    api = offline_api(tmp_path, body_timeout_s=30)
    with caplog.at_level(logging.INFO):
        sent = asyncio.run(call(api, method, path, {**headers, "content-length": "1000"},
                                [*short(begun), {"type": "http.disconnect"}]))
    assert sent == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_slow_body_that_keeps_coming_is_read_whole(tmp_path):
    """The timeout is between two pieces of a body, not on the whole of it."""
    api = offline_api(tmp_path, body_timeout_s=TIMEOUT_S)
    body = json.dumps({"text": "a red mug", "k": 0}).encode()  # k=0: a 422 before any search
    pieces = [body[i:i + 4] for i in range(0, len(body), 4)]
    messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                for i, p in enumerate(pieces)]

    async def slowly():
        pending = list(messages)

        async def receive():
            await asyncio.sleep(TIMEOUT_S / 3)
            return pending.pop(0)

        sent = []

        async def send(message):
            sent.append(message)

        await api(http_scope("POST", "/v1/search", {"content-type": "application/json",
                                                    "content-length": str(len(body))}),
                  receive, send)
        return sent

    start = time.monotonic()
    status, _, answered = answer(asyncio.run(slowly()))
    assert time.monotonic() - start > 2 * TIMEOUT_S  # longer than one timeout in all
    assert status == 422 and answered["error"]["field"] == "k", answered


@pytest.fixture()
def server(tmp_path):
    """The offline API under uvicorn (what a Serve replica runs in direct ingress), on a free
    loopback port."""
    config = uvicorn.Config(offline_api(tmp_path, body_timeout_s=TIMEOUT_S), host="127.0.0.1",
                            port=0, log_level="warning", lifespan="off")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    while not running.started:
        time.sleep(0.01)
    yield running.servers[0].sockets[0].getsockname()[:2]
    running.should_exit = True
    thread.join(5)


def test_uvicorn_answers_a_short_body_400_and_closes_the_connection(server):
    with socket.create_connection(server, timeout=TIMEOUT_S + 5) as raw:
        raw.sendall(b"POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n" + JSON_START)
        received = b""
        while chunk := raw.recv(65536):  # until the server closes the connection
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), received
    assert json.loads(body)["error"]["code"] == "incomplete_body"


# -- JSON typed strictly, forms as text -----------------------------------------------------------
@pytest.fixture(scope="module")
def echo():
    """A route that reads its body as /v1/search does and answers what it understood."""
    app = FastAPI()
    install_handlers(app, retry_after_s=1)

    @app.post("/v1/search")
    async def read(body: Annotated[SearchBody, Depends(search_body)]) -> dict:
        return body.request.model_dump(mode="json", exclude_unset=True)

    with TestClient(app) as http:
        yield http


def nested(path: str, value) -> dict:
    head, _, rest = path.partition(".")
    return {head: nested(rest, value) if rest else value}


# A JSON field and a value of another JSON type that it once took (true as 1, "5" as 5).
LOOSE_JSON = [("k", True), ("k", "5"), ("k", 5.0), ("rerank", 1), ("rerank", "true"),
              ("debug", "yes"), ("min_relevance", "0.5"), ("min_relevance", True),
              ("weights.dense", True), ("weights.lexical", "1"), ("boosts.popularity", "0.2"),
              ("boosts.out_of_stock_factor", False), ("filters.price_min", "5"),
              ("filters.rating_min", True)]


@pytest.mark.parametrize(("path", "value"), LOOSE_JSON)
def test_json_takes_numbers_and_booleans_strictly(echo, path, value):
    body = {"text": "x", **nested(path, value)}
    if path.startswith("weights."):
        body["weights"] = {"dense": 1, "lexical": 1, **body["weights"]}
    response = echo.post("/v1/search", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", path), error


def test_json_numbers_may_be_whole_where_a_float_is_asked(echo):
    response = echo.post("/v1/search", json={
        "text": "x", "k": 5, "rerank": False, "min_relevance": 1,
        "weights": {"dense": 1, "lexical": 0}, "filters": {"price_min": 5},
        "boosts": {"out_of_stock": "exclude", "popularity": 0}})
    assert response.status_code == 200, response.text
    asked = response.json()
    assert (asked["k"], asked["min_relevance"], asked["weights"]) == (
        5, 1.0, {"dense": 1.0, "lexical": 0.0})
    assert asked["boosts"]["out_of_stock"] == "exclude"


def test_a_form_carries_numbers_and_booleans_as_text(echo):
    response = echo.post("/v1/search", data={
        "text": "x", "k": "5", "rerank": "false", "debug": "true", "min_relevance": "0.5",
        "weights": '{"dense": 1, "lexical": 0.5}', "filters": '{"price_min": 5}'})
    assert response.status_code == 200, response.text
    asked = response.json()
    assert (asked["k"], asked["rerank"], asked["debug"], asked["min_relevance"]) == (
        5, False, True, 0.5)
    assert asked["weights"] == {"dense": 1.0, "lexical": 0.5}


@pytest.mark.parametrize(("part", "text", "field"), [
    ("weights", '{"dense": "1", "lexical": 1}', "weights.dense"),
    ("filters", '{"price_min": true}', "filters.price_min"),
    ("boosts", '{"popularity": "0.2"}', "boosts.popularity")])
def test_a_form_s_json_parts_are_json_typed_strictly(echo, part, text, field):
    response = echo.post("/v1/search", data={"text": "x", part: text})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["field"] == field
