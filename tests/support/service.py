"""The live Pardus service for the session: a sample catalogue ingested into Milvus Lite, the
Serve app on the session's Ray over HTTP (127.0.0.1:8127), tiny embedder and reranker."""

from __future__ import annotations

import os
import time

import httpx
import pytest

SERVICE_PORT = 8127  # serve_local's port (tests/conftest.py)
API_KEY = "test-key-1-0123456789"  # 16 characters or more
# Above gRPC's default 4 MiB, which a picture must cross in Serve's throughput mode.
REQUEST_LIMIT = 12_000_000
BODY_TIMEOUT_S = 2  # short, so a test of a body that stops short is quick


@pytest.fixture(scope="session")
def sample_catalogue(tmp_path_factory):
    from pardus.ingest.samples import write_sample_catalogue

    folder = tmp_path_factory.mktemp("catalogue")
    write_sample_catalogue(folder, count=24)
    return folder


@pytest.fixture(scope="session")
def tiny_reranker_path(tmp_path_factory):
    from pardus.deployments.tiny.phi3v import write_tiny_phi3v

    return str(write_tiny_phi3v(tmp_path_factory.mktemp("phi3v") / "phi3v-tiny"))


@pytest.fixture(scope="session")
def service_settings(tmp_path_factory, embedder_settings, sample_catalogue, tiny_reranker_path):
    """Settings overrides of the session's app (the app's `args.settings`)."""
    work = tmp_path_factory.mktemp("service")
    return {
        "embedder": embedder_settings.model_dump(),
        "milvus": {"uri": str(work / "pardus.db"), "collection": "service_test",
                   "index_type": "FLAT", "timeout_s": 5},
        "reranker": {"model": tiny_reranker_path, "dtype": "float32", "max_model_len": 4096,
                     "num_crops": 1, "enforce_eager": True, "timeout_s": 60, "grid_cell": 96,
                     "max_tokens": 160, "max_candidates": 6},
        "serving": {"image_root": str(sample_catalogue), "api_keys": [API_KEY],
                    "max_request_bytes": REQUEST_LIMIT, "retry_after_s": 2,
                    "body_timeout_s": BODY_TIMEOUT_S},
        "ingest": {"report": str(work / "report.jsonl")},
    }


def _wait_ready(url: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = httpx.get(f"{url}/readyz", timeout=10)
            if last.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(1)
    raise RuntimeError(f"the service never became ready: {getattr(last, 'text', last)}")


@pytest.fixture(scope="session")
def service_url(serve_local, service_settings, sample_catalogue):
    """Base URL of the running app; the catalogue is ingested before it starts."""
    from pardus.deployments.catalogue import lite_server
    from pardus.deployments.settings import Settings
    from pardus.ingest.pipeline import run_ingest
    from pardus.serve.app import build_app

    settings = Settings(**service_settings)
    summary = run_ingest(str(sample_catalogue / "items.jsonl"), settings)
    assert summary.indexed == 24, summary
    app = build_app({"settings": service_settings})
    serve_local.run(app, name="pardus", route_prefix="/")
    url = f"http://127.0.0.1:{SERVICE_PORT}"
    _wait_ready(url)
    yield url
    serve_local.delete("pardus")
    lite_server.stop(settings.milvus.uri)


@pytest.fixture()
def client(service_url):
    with httpx.Client(base_url=service_url, timeout=120) as http:
        yield http


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory):
    """Where tests leave screenshots and logs (PARDUS_TEST_ARTIFACTS, else a temp folder)."""
    from pathlib import Path

    folder = os.environ.get("PARDUS_TEST_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path
