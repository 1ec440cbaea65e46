"""Shared fixtures: a tiny random-weight Visualized BGE written once per test session."""

from __future__ import annotations

import os
from contextlib import contextmanager

import pytest

# Tests never reach the model hub; a test that needs it would hang on retries otherwise.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# The live service for the session (tests/serve, tests/cli): fixtures shared across folders.
pytest_plugins = ["tests.support.service"]

METRICS_PORT = 8131  # Ray's Prometheus endpoint in tests (outside Ray's worker port range)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> dict[str, str]:
    """Settings values of a tiny model (seed 0) in the official file layout."""
    from pardus.deployments.tiny.embedder import write_tiny_model

    return write_tiny_model(tmp_path_factory.mktemp("tiny-model"), seed=0)


@pytest.fixture(scope="session")
def embedder_settings(tiny_model):
    from pardus.deployments.settings import EmbedderSettings

    return EmbedderSettings(
        checkpoint=tiny_model["PARDUS_EMBEDDER__CHECKPOINT"],
        text_model=tiny_model["PARDUS_EMBEDDER__TEXT_MODEL"],
        batch_size=4,
    )


@pytest.fixture(scope="session")
def embedder(embedder_settings):
    from pardus.deployments.embedder.encoder import Embedder

    model = Embedder(embedder_settings)
    yield model
    model.close()


@pytest.fixture(scope="session")
def milvus_process(tmp_path_factory):
    """A Milvus 2.5 core server over TCP (loopback), the engine generation production runs;
    tests that stop it must start it again."""
    from tests.support.milvus_core import milvus_core

    with milvus_core(tmp_path_factory.mktemp("milvus-core") / "core.db") as process:
        yield process


@pytest.fixture(scope="session")
def milvus_server(milvus_process) -> str:
    """The URI of the session's Milvus 2.5 server."""
    return milvus_process.uri


@pytest.fixture(scope="session")
def milvus_23(tmp_path_factory):
    """A real Milvus 2.3 standalone (PyPI `milvus`), kept for what the 2.5 core here cannot
    show: server-side collection aliases (the 2.5 core of milvus-lite has no alias calls)."""
    from tests.support import milvus_server as server

    if not server.network_is_private():
        pytest.skip("the Milvus 2.3 server binds every interface: run the tests through "
                    "tests/run-isolated (make test) so it lives in a loopback-only namespace")
    if server.binary() is None:
        pytest.skip("milvus-server is not installed (pip install milvus==2.3.5)")
    with server.milvus_server(tmp_path_factory.mktemp("milvus-23")) as process:
        yield process.uri


@contextmanager
def patched_environ(values: dict[str, str]):
    """os.environ with `values` set (unless already set) for the block only."""
    added = {name: value for name, value in values.items() if name not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance for the session (4 logical CPUs on 2 cores: the session app and a
    module's own deployments fit side by side; no dashboard)."""
    import ray
    from ray import serve  # noqa: F401  (imported first: see below)

    from pardus.serve.ray_env import serve_environment

    if not ray.is_initialized():
        # Ray's processes run in the Serve mode `pardus serve` and Kubernetes run in; this
        # driver keeps Serve's default mode (its constants were read at the import above), in
        # which the tests' blocking handle calls work outside an event loop.
        with patched_environ(serve_environment(local=True)):
            ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
                     configure_logging=False, _metrics_export_port=METRICS_PORT)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def serve_local(ray_local):
    """Ray Serve on the session's Ray, HTTP on loopback (outside Ray's worker port range)."""
    from ray import serve

    serve.start(http_options={"host": "127.0.0.1", "port": 8127})
    yield serve
    serve.shutdown()
