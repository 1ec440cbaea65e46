"""The catalogue store on real Milvus: Lite in-process, Lite shared server, Milvus 2.3 server."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from deployments.catalogue import lite_server
from deployments.catalogue.filters import SearchFilters
from deployments.settings import MilvusSettings
from deployments.catalogue.items import CatalogueItem
from deployments.catalogue.store import CatalogueStore, StoreError, StoreUnavailable
from tests.support.lite_holder import foreign_holder

DIM = 16


@pytest.fixture(scope="module")
def lite_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("lite") / "catalogue.db"
    yield path
    lite_server.stop(path)


@pytest.fixture(params=["lite", "lite-shared", "server"])
def settings(request, lite_dir) -> MilvusSettings:
    name = "t_" + uuid.uuid4().hex[:10]
    if request.param == "server":
        return MilvusSettings(uri=request.getfixturevalue("milvus_server"), collection=name)
    if request.param == "lite":
        return MilvusSettings(uri=str(lite_dir.with_name("embedded.db")), collection=name,
                              lite_server=False, index_type="FLAT")
    return MilvusSettings(uri=str(lite_dir), collection=name)


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def catalogue(n: int = 30) -> list[CatalogueItem]:
    return [
        CatalogueItem(id=f"item-{i}", title=f"thing {i}", category=["Toys", "Home", 'Odd "Q"'][i % 3],
                      price=float(i) if i % 7 else None, rating=(i % 5) + 0.5, image=f"images/{i}.jpg")
        for i in range(n)
    ]


@pytest.fixture
def store(settings):
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    store.upsert(catalogue(), unit_rows(30))
    yield store
    store.close()


def test_each_item_finds_itself_first(store):
    vectors = unit_rows(30)
    for i in (0, 13, 29):
        hits = store.search(vectors[i], k=3)
        assert hits[0].item.id == f"item-{i}" and hits[0].score == pytest.approx(1.0, abs=1e-4)
        assert hits[0].item.title == f"thing {i}" and hits[0].item.image == f"images/{i}.jpg"


def test_upsert_is_idempotent_and_replaces(store):
    assert store.count() == 30
    store.ensure_collection()  # again: nothing changes
    store.upsert(catalogue()[:5], unit_rows(5))
    assert store.count() == 30
    changed = CatalogueItem(id="item-1", title="renamed", category="Toys", price=3.5)
    store.upsert([changed], unit_rows(1, seed=9))
    assert store.get(["item-1"])[0].title == "renamed" and store.count() == 30


def test_get_delete_and_existing_ids(store):
    items = store.get(["item-4", "missing", "item-2"])
    assert [i.id for i in items] == ["item-4", "item-2"]
    assert items[1].price == 2.0 and items[0].category == "Home"
    assert store.get(["item-7"])[0].price == -1.0  # no price: unknown
    assert store.delete(["item-4", "missing"]) == ["item-4"]
    assert store.count() == 29 and store.existing_ids(["item-4", "item-5"]) == {"item-5"}


def test_filters_run_on_milvus(store):
    query = unit_rows(30)[0]
    hits = store.search(query, k=30, filters=SearchFilters(categories=['Odd "Q"']))
    assert {h.item.category for h in hits} == {'Odd "Q"'} and len(hits) == 10
    hits = store.search(query, k=30, filters=SearchFilters(price_min=10, price_max=20))
    assert hits and all(10 <= h.item.price <= 20 for h in hits)
    assert len(hits) == len([i for i in range(10, 21) if i % 7])
    hits = store.search(query, k=30, filters=SearchFilters(price_max=6))
    assert all(0 <= h.item.price <= 6 for h in hits)  # unknown prices (-1) are not "cheap"
    hits = store.search(query, k=30, filters=SearchFilters(rating_min=4, categories=["Home"]))
    assert hits and all(h.item.rating >= 4 and h.item.category == "Home" for h in hits)


@pytest.mark.parametrize("hostile", ['Toys" or id != "', 'Toys\\" or category != "', "Toys' or '1'='1"])
def test_injection_attempts_are_literal_matches(store, hostile):
    assert store.search(unit_rows(1)[0], k=30, filters=SearchFilters(categories=[hostile])) == []


def test_other_dimension_is_refused(settings, store):
    other = CatalogueStore(settings, DIM + 1)
    with pytest.raises(StoreError, match="holds 16-d vectors"):
        other.ensure_collection()


def test_vectors_must_fit(store):
    with pytest.raises(ValueError, match="vectors must be"):
        store.upsert(catalogue()[:2], np.zeros((2, DIM + 1), dtype=np.float32))


def test_unreachable_server_is_unavailable_quickly():
    settings = MilvusSettings(uri="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
        CatalogueStore(settings, DIM)


def test_a_locked_lite_directory_is_a_clear_error(tmp_path):
    with foreign_holder(tmp_path / "held.db"):
        with pytest.raises(StoreUnavailable, match="locked by another process"):
            CatalogueStore(MilvusSettings(uri=str(tmp_path / "held.db"), lite_server=False), DIM)
