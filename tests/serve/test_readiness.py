"""The app on a real Milvus server that stops answering (frozen) and comes back: 503 + Retry-After while it is
down, ready again (with the data) once it is back; no reranker configured = flagged answers."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.serve.test_api import data_url, jpeg
from tests.support.service import API_KEY, SERVICE_PORT

PREFIX = f"http://127.0.0.1:{SERVICE_PORT}/on-server"


@pytest.fixture(scope="module")
def server_app(serve_local, milvus_server, embedder_settings, sample_catalogue, tmp_path_factory):
    from pardus.serve.app import build_app

    settings = {
        "embedder": embedder_settings.model_dump(),
        "milvus": {"uri": milvus_server, "collection": "readiness", "timeout_s": 3},
        "reranker": {"enabled": False},
        "serving": {"image_root": str(tmp_path_factory.mktemp("images")), "api_keys": [API_KEY],
                    "retry_after_s": 3},
    }
    serve_local.run(build_app({"settings": settings}), name="pardus-on-server",
                    route_prefix="/on-server")
    yield PREFIX
    serve_local.delete("pardus-on-server")


def wait_for(predicate, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outcome = predicate()
        if outcome:
            return outcome
        time.sleep(1)
    raise AssertionError("condition not met in time")


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def test_milvus_down_gives_503_then_recovers(server_app, milvus_process):
    url = server_app
    wait_for(lambda: ready(url))
    item = {"id": "kept-1", "title": "kept", "image": data_url(jpeg(code=5))}
    response = httpx.post(f"{url}/v1/items", json={"items": [item]},
                          headers={"X-API-Key": API_KEY}, timeout=60)
    assert response.status_code == 200, response.text
    query = {"image": data_url(jpeg(code=5)), "k": 1}
    body = httpx.post(f"{url}/v1/search", json=query, timeout=60).json()
    assert body["results"][0]["id"] == "kept-1"
    assert body["rerank"]["outcome"] == "disabled"

    milvus_process.pause()
    try:
        readyz = httpx.get(f"{url}/readyz", timeout=30)
        assert readyz.status_code == 503 and readyz.headers["retry-after"] == "3"
        assert readyz.json()["checks"]["milvus"] != "ok"
        assert readyz.json()["checks"]["embedder"] == "ok"
        down = httpx.post(f"{url}/v1/search", json=query, timeout=30)
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "3"
        assert down.json()["error"]["code"] == "store_unavailable"
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200  # alive, not ready
    finally:
        milvus_process.resume()
    wait_for(lambda: ready(url))
    back = httpx.post(f"{url}/v1/search", json=query, timeout=60)
    assert back.status_code == 200 and back.json()["results"][0]["id"] == "kept-1"
