"""Shared fixtures: a tiny random-weight Visualized BGE written once per test session."""

from __future__ import annotations

import os

import pytest

# Tests never reach the model hub; a test that needs it would hang on retries otherwise.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict[str, str]:
    """Settings values of a tiny model (seed 0) in the official file layout."""
    from deployments.embedder.tiny import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def embedder_settings(tiny_model):
    from deployments.settings import EmbedderSettings

    return EmbedderSettings(
        checkpoint=tiny_model["PARDUS_EMBEDDER__CHECKPOINT"],
        text_model=tiny_model["PARDUS_EMBEDDER__TEXT_MODEL"],
        batch_size=4,
    )


@pytest.fixture(scope="session")
def embedder(embedder_settings):
    from deployments.embedder.encoder import Embedder

    model = Embedder(embedder_settings)
    yield model
    model.close()


def _network_is_private() -> bool:
    """Only loopback here (tests/run-isolated): safe to start servers that bind 0.0.0.0."""
    import socket

    return {name for _, name in socket.if_nameindex()} == {"lo"}


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):
    """A real Milvus 2.3 standalone server (PyPI `milvus`), in the private network namespace."""
    import shutil
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    if not _network_is_private():
        pytest.skip("the Milvus server binds every interface: run the tests through "
                    "tests/run-isolated (make test) so it lives in a loopback-only namespace")
    binary = Path(sys.executable).with_name("milvus-server")
    if not binary.exists() and not shutil.which("milvus-server"):
        pytest.skip("milvus-server is not installed (pip install milvus==2.3.5)")
    data = tmp_path_factory.mktemp("milvus-server")
    log = open(data / "server.log", "w")
    process = subprocess.Popen([str(binary), "--data", str(data)], stdout=log, stderr=subprocess.STDOUT)
    uri = "http://127.0.0.1:19530"
    deadline = time.monotonic() + 90
    ready = False
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", 19530), timeout=1).close()
            from pymilvus import MilvusClient

            MilvusClient(uri, timeout=5).list_collections()
            ready = True
            break
        except Exception:
            time.sleep(0.5)
    if not ready:
        process.kill()
        pytest.fail(f"Milvus server did not start: {(data / 'server.log').read_text()[-2000:]}")
    yield uri
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the session (2 logical CPUs, no dashboard)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    yield ray
    ray.shutdown()
