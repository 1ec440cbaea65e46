"""Catalogue versions behind one name: first version live, new versions beside it, promote,
drop, an older Pardus's collection; native aliases on a Milvus server, pointer rows on the
embedded core (which has no alias calls)."""

from __future__ import annotations

import threading
import uuid

import numpy as np
import pytest

from pardus.deployments.catalogue import engines
from pardus.deployments.catalogue.engines import NativeAliases, PointerAliases, ServerEngine
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import make_plan
from pardus.deployments.catalogue.schema import LegacyCollection
from pardus.deployments.catalogue.store import CatalogueStore, Picture
from pardus.deployments.catalogue.versions import VersionError
from pardus.deployments.names import QueryKind
from pardus.deployments.settings import MilvusSettings, SearchSettings

DIM = 8


def pictures(prefix: str, n: int) -> list[Picture]:
    rng = np.random.default_rng(len(prefix))
    return [Picture(CatalogueItem(id=f"{prefix}{i}", title=f"{prefix} {i}",
                                  images=(f"{prefix}{i}.jpg",)), 0, rng.normal(size=DIM),
                    rng.normal(size=DIM)) for i in range(n)]


@pytest.fixture
def settings(milvus_server) -> MilvusSettings:
    return MilvusSettings(uri=milvus_server, collection="c_" + uuid.uuid4().hex[:8],
                          alias_refresh_s=0)


def test_first_version_goes_live_a_new_one_waits_for_promote(settings):
    live = CatalogueStore(settings, DIM)
    assert live.ensure_collection() == f"{settings.collection}__v1" == live.live()
    assert isinstance(live.engine.aliases, PointerAliases)  # the core has no alias calls
    live.upsert(pictures("old", 3))
    new = CatalogueStore(settings, DIM, version="v2")
    assert new.ensure_collection() == f"{settings.collection}__v2"
    new.upsert(pictures("new", 5))
    assert live.count() == 3 and live.live().endswith("__v1")  # still serving v1
    assert live.promote("v2").endswith("__v2") and live.count() == 5
    assert [(v.label, v.rows, v.live) for v in live.versions()] == [("v1", 3, False),
                                                                   ("v2", 5, True)]
    with pytest.raises(VersionError, match="live version"):
        live.drop_version("v2")
    with pytest.raises(VersionError, match="no version 'v9'"):
        live.promote("v9")
    with pytest.raises(VersionError, match="lower-case"):
        CatalogueStore(settings, DIM, version="V 2")
    assert live.drop_version("v1").endswith("__v1") and [v.label for v in live.versions()] == ["v2"]


def test_an_older_pardus_collection_gets_the_way_forward(settings):
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(settings.uri)
    old = MilvusClient.create_schema(auto_id=False)  # the single-vector schema of Pardus < 0.2
    old.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    old.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    old.add_field("title", DataType.VARCHAR, max_length=1024)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="FLAT", metric_type="COSINE")
    client.create_collection(settings.collection, schema=old, index_params=index)
    with pytest.raises(LegacyCollection, match="older Pardus") as info:
        CatalogueStore(settings, DIM).ensure_collection()
    assert "--version v1" in str(info.value) and "--replace-legacy" in str(info.value)
    fresh = CatalogueStore(settings, DIM, version="v1")
    fresh.ensure_collection()  # written beside the old one, not live
    fresh.upsert(pictures("re", 2))
    assert fresh.live() is None
    with pytest.raises(VersionError, match="--replace-legacy"):
        fresh.promote("v1")
    fresh.promote("v1", replace_legacy=True)
    assert CatalogueStore(settings, DIM).count() == 2
    assert not client.has_collection(settings.collection) or client.describe_collection(
        settings.collection)["collection_name"] != settings.collection


def test_native_aliases_swap_under_concurrent_searches(milvus_23):
    """On a Milvus server, alter_alias moves the name atomically: searches through the alias
    during swaps always find a full collection (a 2.3 server: the 2.5 core has no aliases)."""
    engine = engines.connect(MilvusSettings(uri=milvus_23, alias_refresh_s=0))
    assert isinstance(engine, ServerEngine)  # a server reports its version
    client, aliases = engine.client, engine.aliases
    assert isinstance(aliases, NativeAliases)
    assert aliases.target(f"missing_{uuid.uuid4().hex[:6]}") is None
    names = [f"swap_{uuid.uuid4().hex[:6]}_{i}" for i in range(2)]
    rng = np.random.default_rng(0)
    for name in names:
        client.create_collection(name, dimension=DIM, consistency_level="Strong")
        client.insert(name, [{"id": i, "vector": rng.normal(size=DIM).tolist()} for i in range(50)])
    alias = f"products_{uuid.uuid4().hex[:6]}"
    aliases.point(alias, names[0])
    assert aliases.target(alias) == names[0]
    errors, sizes, stop = [], [], threading.Event()

    def search():
        while not stop.is_set():
            try:
                sizes.append(len(client.search(alias, data=[rng.normal(size=DIM).tolist()],
                                               limit=5)[0]))
            except Exception as exc:  # noqa: BLE001 - every failure counts
                errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for thread in threads:
        thread.start()
    for swap in range(6):
        aliases.point(alias, names[(swap + 1) % 2])
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors and sizes and min(sizes) == 5
    assert aliases.target(alias) == names[0]


def test_a_search_through_a_version_dropped_under_a_cached_pointer_looks_again(settings):
    settings = settings.model_copy(update={"alias_refresh_s": 60.0})
    reader = CatalogueStore(settings, DIM)
    reader.ensure_collection()
    reader.upsert(pictures("a", 3))
    writer = CatalogueStore(settings, DIM, version="v2")
    writer.ensure_collection()
    writer.upsert(pictures("b", 4))
    plan = make_plan(QueryKind.IMAGE, SearchSettings())
    assert len(reader.search(plan, np.ones(DIM), "", 10).hits) == 3  # caches v1 for a minute
    writer.promote("v2")
    writer.drop_version("v1")
    assert len(reader.search(plan, np.ones(DIM), "", 10).hits) == 4
