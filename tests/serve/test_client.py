"""The typed HTTP client: answers as the API's models, failures as the domain errors the service
raised (serve/errors.py's table, read both ways)."""

from __future__ import annotations

import asyncio
import base64
import io

import httpx
import pytest
from PIL import Image

from pardus.deployments.errors import (
    BadQuery,
    Forbidden,
    NotFound,
    PardusError,
    Refused,
    TooLarge,
    Unauthorized,
    Unavailable,
)
from pardus.deployments.names import Mode, QueryKind, RerankOutcome
from pardus.deployments.settings import Settings
from pardus.serve.api import create_api
from pardus.serve.client import NotPardus, PardusClient, ServiceUnreachable
from pardus.serve.errors import STATUS, InvalidRequest, UnsupportedMediaType, kind_of, status_of
from pardus.serve.factory import build_search_service
from pardus.serve.schemas import SearchRequest
from pardus.serve.search import Models


def run(coro):
    return asyncio.run(coro)


def jpeg() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "JPEG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("kind", list(STATUS))
def test_the_table_reads_both_ways(kind):
    """Every kind of failure has its status, and the client turns that status back into the
    same kind (the HTTP-only kinds of 415 and 422 come back as the BadQuery they are)."""
    error = kind("message")
    back = kind_of(status_of(error))
    assert isinstance(error, back)
    if kind not in (UnsupportedMediaType, InvalidRequest):
        assert back is kind


def test_statuses_of_the_kinds():
    assert [status_of(kind("m")) for kind in (BadQuery, Unauthorized, Forbidden, NotFound,
                                                TooLarge, Refused, Unavailable)] == [
        400, 401, 403, 404, 413, 500, 503]
    assert status_of(PardusError("m")) == 500  # a kind without a row: an internal error


def test_answers_are_typed_and_failures_are_domain_errors(service_url, sample_catalogue):
    async def scenario():
        async with PardusClient(service_url) as client:
            found = await client.search(SearchRequest(text="a yellow bag", k=3, rerank=False))
            assert found.kind is QueryKind.TEXT and found.mode is Mode.HYBRID
            assert found.rerank.outcome is RerankOutcome.OFF and len(found.results) == 3
            assert (await client.item(found.results[0].id)).id == found.results[0].id
            with pytest.raises(NotFound) as missing:
                await client.item("no-such-item")
            assert missing.value.code == "item_not_found"
            with pytest.raises(BadQuery) as refused:
                await client.search(SearchRequest(image=jpeg(), mode=Mode.LEXICAL, rerank=False))
            assert (refused.value.code, refused.value.field) == ("invalid_mode", "mode")
            assert (await client.readiness()).ready

    run(scenario())


def test_nothing_listening_is_unreachable():
    async def scenario():
        async with PardusClient("http://127.0.0.1:9") as client:
            await client.search(SearchRequest(text="x"))

    with pytest.raises(ServiceUnreachable) as caught:
        run(scenario())
    assert "pardus serve" in caught.value.message


def test_a_backend_down_is_unavailable_with_the_retry_hint(tmp_path):
    """A service whose Milvus is gone answers 503 with Retry-After; the client raises
    Unavailable carrying it (here the app is reached in process, through ASGI)."""
    settings = Settings(embedder={"dim": 8}, serving={"retry_after_s": 7,
                                                       "image_root": str(tmp_path)},
                        milvus={"uri": "http://127.0.0.1:9", "timeout_s": 2})

    async def embed(query):
        raise AssertionError("a lexical search embeds nothing")

    service = build_search_service(settings, Models(embed, embed))
    transport = httpx.ASGITransport(app=create_api(service))

    async def scenario():
        async with PardusClient("http://pardus", transport=transport) as client:
            await client.search(SearchRequest(text="x", mode=Mode.LEXICAL, rerank=False))

    with pytest.raises(Unavailable) as caught:
        run(scenario())
    assert caught.value.code == "store_unavailable" and caught.value.retry_after_s == 7


def test_an_answer_that_is_not_pardus_is_said_so():
    async def teapot(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, text="<html>I am a teapot</html>")

    async def scenario():
        async with PardusClient("http://pardus", transport=httpx.MockTransport(teapot)) as c:
            await c.search(SearchRequest(text="x"))

    with pytest.raises(NotPardus, match="teapot"):
        run(scenario())
