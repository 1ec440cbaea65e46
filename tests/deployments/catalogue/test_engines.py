"""The engine adapters: which one each Milvus gets, how failures are sorted (by gRPC status and
Milvus error code, on constructed errors and on a real core that freezes, dies and refuses),
and a store that does no I/O until it is used."""

from __future__ import annotations

import ast
import time
import uuid
from pathlib import Path

import grpc
import numpy as np
import pytest
from pymilvus.exceptions import MilvusException, MilvusUnavailableException

from pardus.deployments.catalogue import engines, lite_server
from pardus.deployments.catalogue.connection import StoreError, StoreUnavailable
from pardus.deployments.catalogue.engines import CoreEngine, PointerAliases
from pardus.deployments.catalogue.engines.base import classify
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.store import CatalogueStore, Picture
from pardus.deployments.settings import MilvusSettings

DIM = 8


class RpcError(grpc.RpcError):
    """A gRPC failure as pymilvus lets it through (grpc's own is built inside the channel)."""

    def __init__(self, code: grpc.StatusCode):
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "details"


@pytest.mark.parametrize(("failure", "expected"), [
    (RpcError(grpc.StatusCode.DEADLINE_EXCEEDED), StoreUnavailable),  # a frozen server
    (RpcError(grpc.StatusCode.UNAVAILABLE), StoreUnavailable),
    (RpcError(grpc.StatusCode.CANCELLED), StoreUnavailable),
    (RpcError(grpc.StatusCode.UNIMPLEMENTED), StoreError),  # a call the engine lacks
    (RpcError(grpc.StatusCode.PERMISSION_DENIED), StoreError),
    (RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED), StoreError),  # a message over the limit
    # pymilvus after its own retries: the gRPC status as the code
    (MilvusException(grpc.StatusCode.UNAVAILABLE, "Retry run out of 75 retry times"),
     StoreUnavailable),
    (MilvusException(2, "Fail connecting to server on 127.0.0.1:9"), StoreUnavailable),
    (MilvusException(4, "too many requests"), StoreUnavailable),
    (MilvusException(8, "rate limit exceeded"), StoreUnavailable),
    (MilvusException(10001, "timeout"), StoreUnavailable),
    (MilvusException(1, "service not ready", retriable=True), StoreUnavailable),
    (MilvusException(1, "Unexpected error, message=<...>"), StoreError),  # pymilvus's default
    (MilvusException(100, "collection not found"), StoreError),
    (MilvusException(1100, "invalid parameter", is_input_error=True), StoreError),
    (MilvusException(65535, "the server is unavailable, connect again"), StoreError),  # words
    (MilvusUnavailableException(message="server unavailable"), StoreUnavailable),
    (ConnectionResetError("reset by peer"), StoreUnavailable),
])
def test_failures_are_sorted_by_status_and_code(failure, expected):
    error = classify(failure, "http://milvus:19530", "search")
    assert type(error) is expected
    if expected is StoreUnavailable:
        assert "http://milvus:19530" in error.message


def test_our_own_bugs_are_not_sorted():
    assert classify(KeyError("entity"), "http://milvus:19530", "search") is None


def test_the_core_gets_its_adapter(milvus_server):
    engine = engines.connect(MilvusSettings(uri=milvus_server))
    try:
        assert isinstance(engine, CoreEngine)  # GetVersion: UNIMPLEMENTED
        assert isinstance(engine.aliases, PointerAliases)
        assert engine.uri == milvus_server
    finally:
        engine.close()


def test_constructing_a_store_does_no_io(tmp_path):
    """Not even a local path's shared server starts until the store is used."""
    path = tmp_path / "lazy.db"
    start = time.monotonic()
    store = CatalogueStore(MilvusSettings(uri=str(path)), DIM)
    unreachable = CatalogueStore(MilvusSettings(uri="http://127.0.0.1:9", timeout_s=2), DIM)
    assert time.monotonic() - start < 0.5
    assert list(tmp_path.iterdir()) == [] and store.uri == str(path)
    unreachable.close()  # nothing to close
    store.close()
    try:
        assert store.count() == 0  # the first use connects: starts the server, finds nothing
        assert lite_server.running(path) is not None and store.uri.startswith("http://")
    finally:
        store.close()
        lite_server.stop(path)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
        unreachable.live()


def rows(n: int) -> list[Picture]:
    rng = np.random.default_rng(n)
    return [Picture(CatalogueItem(id=f"i{i}", title=f"item {i}", images=(f"{i}.jpg",)), 0,
                    rng.normal(size=DIM), rng.normal(size=DIM)) for i in range(n)]


def test_a_frozen_or_dead_core_is_unavailable_a_refusal_is_not(milvus_process):
    """The real failures behind the table: no answer in time (frozen), nobody listening
    (killed), and Milvus's "collection not found"; a restarted core serves again."""
    settings = MilvusSettings(uri=milvus_process.uri, collection="c_" + uuid.uuid4().hex[:8],
                              timeout_s=2)
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    store.upsert(rows(3))
    with pytest.raises(StoreError, match="collection not found"):
        CatalogueStore(settings, DIM, version="gone").count()
    milvus_process.pause()
    try:
        with pytest.raises(StoreUnavailable, match="DEADLINE_EXCEEDED"):
            store.count()
    finally:
        milvus_process.resume()
    assert store.count() == 3
    milvus_process.kill()
    try:
        with pytest.raises(StoreUnavailable, match=milvus_process.uri.split("//")[1]):
            store.count()
    finally:
        milvus_process.start()
    again = CatalogueStore(settings, DIM)
    try:
        assert again.count() == 3
    finally:
        again.close()
        store.close()


ONE_KIND_ONLY = {"get_server_version", "describe_alias", "alter_alias", "create_alias",
                 "hybrid_search"}  # calls that one kind of Milvus has, or answers its own way
ADAPTERS = {"CoreEngine", "ServerEngine"}


def engine_tells(source: str) -> list[int]:
    """Lines of code that ask which Milvus they talk to: naming an adapter, calling what only
    one kind has, or testing whether the Milvus URI is a local path."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and node.id in ADAPTERS:
            lines.append(node.lineno)
        elif isinstance(node, ast.Attribute) and (
                node.attr in ONE_KIND_ONLY or node.attr == "kind" and "engine" in
                ast.unparse(node.value) or node.attr == "is_local" and "milvus" in
                ast.unparse(node.value)):
            lines.append(node.lineno)
    return lines


def test_nothing_outside_the_adapters_asks_which_milvus_it_talks_to():
    """What differs between the embedded core and Milvus servers lives in engines/ alone."""
    repo = Path(__file__).resolve().parents[3]
    engines_folder = repo / "deployments" / "catalogue" / "engines"
    found = [f"{path.relative_to(repo)}:{line}"
             for folder in ("cli", "serve", "ingest", "evaluation", "deployments")
             for path in sorted((repo / folder).rglob("*.py"))
             if engines_folder not in path.parents
             for line in engine_tells(path.read_text())]
    assert found == []
    planted = "if settings.milvus.is_local:\n    store.engine.kind\nclient.hybrid_search()\n"
    assert engine_tells(planted) == [1, 2, 3]  # the check can fail
