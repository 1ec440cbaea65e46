"""The catalogue store on real engines: the embedded core in process (pymilvus's local mode),
through the shared loopback server, and as a Milvus 2.5 server over TCP."""

from __future__ import annotations

import sys
import time
import uuid

import numpy as np
import pytest

from pardus.deployments.catalogue import lite_server
from pardus.deployments.catalogue.engines import CoreEngine
from pardus.deployments.catalogue.engines.core import weighted_share
from pardus.deployments.catalogue.filters import SearchFilters
from pardus.deployments.catalogue.items import CatalogueItem
from pardus.deployments.catalogue.plans import make_plan
from pardus.deployments.catalogue.store import CatalogueStore, Picture, StoreError, StoreUnavailable
from pardus.deployments.names import Mode, QueryKind
from pardus.deployments.settings import MilvusSettings, SearchSettings, Weights
from tests.support.lite_holder import foreign_holder

DIM = 16
CATEGORIES = ["Toys", "Home", 'Odd "Q"']


@pytest.fixture(scope="module")
def lite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("lite") / "catalogue.db"
    yield path
    lite_server.stop(path)


@pytest.fixture(params=["lite", "lite-shared", "server"])
def settings(request, lite_file) -> MilvusSettings:
    name = "t_" + uuid.uuid4().hex[:10]
    if request.param == "server":
        return MilvusSettings(uri=request.getfixturevalue("milvus_server"), collection=name)
    if request.param == "lite":
        return MilvusSettings(uri=str(lite_file.with_name("embedded.db")), collection=name,
                              lite_server=False, index_type="FLAT")
    return MilvusSettings(uri=str(lite_file), collection=name)


def unit(seed: int) -> np.ndarray:
    row = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return row / np.linalg.norm(row)


def item(i: int, pictures: int | None = None) -> CatalogueItem:
    return CatalogueItem(
        id=f"item-{i}", title=f"thing {i} model QX{7000 + i}", category=CATEGORIES[i % 3],
        brand="Zebulon" if i == 11 else "Acme", price=float(i) if i % 7 else None,
        rating=(i % 5) + 0.5, images=tuple(f"images/{i}-{j}.jpg"
                                           for j in range(pictures or 1 + i % 3)))


def pictures_of(items: list[CatalogueItem]) -> list[Picture]:
    """Picture j of item i: image vector unit(100 i + j), pair vector unit(10000 + 100 i + j)."""
    return [Picture(it, j, unit(100 * i + j), unit(10_000 + 100 * i + j))
            for i, it in enumerate(items) for j in range(len(it.images))]


@pytest.fixture
def store(settings):
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    store.upsert(pictures_of([item(i) for i in range(30)]))
    yield store
    store.close()


def plan(kind=QueryKind.IMAGE, mode=None, **search):
    return make_plan(kind, SearchSettings(**search), mode)


def test_every_picture_finds_its_item_once(store):
    assert store.count() == 30 and store.count_rows() == sum(1 + i % 3 for i in range(30))
    for i, j in ((0, 0), (13, 1), (29, 2)):
        hits = store.search(plan(), unit(100 * i + j), "", k=30).hits
        assert (hits[0].item.id, hits[0].image_index) == (f"item-{i}", j)
        assert hits[0].image == f"images/{i}-{j}.jpg" and hits[0].score == pytest.approx(1, 1e-4)
        assert len({h.item.id for h in hits}) == len(hits) == 30  # grouped: one hit per item
        assert hits[0].item.images == item(i).images  # any row carries the whole item


def test_a_window_is_read_without_pictures_and_the_page_gets_them(store):
    """pictures=False reads every field but the picture list; with_pictures adds it from the
    version searched, keeps the hits' order and matched picture, and leaves out an item
    deleted since."""
    found = store.search(plan(), unit(100 * 13 + 1), "", k=30, pictures=False)
    assert len(found.hits) == 30 and all(hit.item.images == () for hit in found.hits)
    assert found.hits[0].item.id == "item-13" and found.hits[0].item.title == item(13).title
    page = found.hits[:5]
    store.delete([page[2].item.id])
    filled = store.with_pictures(found.version, page)
    kept = [hit for i, hit in enumerate(page) if i != 2]
    assert [(h.item.id, h.image_index, h.score) for h in filled] == [
        (h.item.id, h.image_index, h.score) for h in kept]
    assert [h.item.images for h in filled] == [
        item(int(h.item.id.split("-")[1])).images for h in kept]
    assert filled[0].image == "images/13-1.jpg"
    assert store.with_pictures(found.version, []) == []


def test_words_only_bm25_matches_rank_first_even_with_random_vectors(store):
    for words, expected in (("QX7011", "item-11"), ("zebulon", "item-11"),
                            ("qx7023 mug", "item-23")):
        hybrid = store.search(plan(QueryKind.TEXT), unit(999), words, k=5).hits
        assert hybrid[0].item.id == expected, words
        lexical = store.search(plan(QueryKind.TEXT, Mode.LEXICAL), None, words, k=5).hits
        assert lexical[0].item.id == expected
    assert store.search(plan(QueryKind.TEXT, Mode.LEXICAL), None, "nothing-like-this", 5).hits == []


def test_hybrid_fuses_an_item_once_when_its_routes_pick_different_pictures(store):
    """item-2's third picture is the dense match, its words the BM25 match: one hit, both
    routes' shares summed, the dense route's picture shown."""
    composed = store.search(plan(QueryKind.COMPOSED, text_fusion="rrf", composed_fusion="rrf"),
                            unit(202), "QX7002", k=10).hits
    assert composed[0].item.id == "item-2" and composed[0].image_index == 2
    assert [h.item.id for h in composed].count("item-2") == 1
    assert composed[0].score == pytest.approx(2 / 61, rel=1e-3)  # rank 1 in both routes


def test_weighted_fusion_weighs_each_route_the_right_way_up(store):
    """Weights 0/1 rank as BM25 alone and 1/0 as the vectors alone; a mix adds both shares,
    each score normalised as Milvus documents it (cosine (1+s)/2, BM25 2·atan(s)/π). The
    embedded core's own WeightedRanker turns BM25 upside down: this catches fusing there."""
    words, query = "thing acme QX7003", unit(10_000 + 300)  # item-3: both routes' best

    def fused(dense: float, lexical: float) -> list:
        weighted = make_plan(QueryKind.TEXT, SearchSettings(), Mode.HYBRID,
                             Weights(dense=dense, lexical=lexical))
        return store.search(weighted, query, words, k=10).hits

    lexical = store.search(plan(QueryKind.TEXT, Mode.LEXICAL), None, words, k=10).hits
    dense = store.search(plan(QueryKind.TEXT, Mode.DENSE), query, "", k=10).hits
    assert lexical[0].item.id == dense[0].item.id == "item-3"
    for hits, route, metric in ((fused(0, 1), lexical, "BM25"), (fused(1, 0), dense, "COSINE")):
        assert hits[0].item.id == "item-3"
        assert [h.score for h in hits] == pytest.approx(
            [weighted_share(metric, 1, h.score) for h in route], rel=1e-4)
    assert isinstance(store.engine, CoreEngine)  # every engine here is the 2.5 core
    both = fused(1, 0.3)[0]
    assert both.item.id == "item-3" and both.score == pytest.approx(
        weighted_share("COSINE", 1, dense[0].score)
        + weighted_share("BM25", 0.3, lexical[0].score), rel=1e-4)


def test_upsert_is_idempotent_replaces_and_drops_stale_pictures(store):
    store.ensure_collection()  # again: nothing changes
    store.upsert(pictures_of([item(i) for i in range(5)]))
    assert store.count() == 30
    renamed = item(2, pictures=1).model_copy(update={"title": "renamed"})
    store.upsert([Picture(renamed, 0, unit(1), unit(2))])
    assert store.get(["item-2"])[0].title == "renamed"
    assert store.complete_ids(["item-2"]) == {"item-2"}  # its 3 rows are 1 now
    twice = item(40, pictures=1)
    assert store.upsert([Picture(twice, 0, unit(3), unit(3)),
                         Picture(twice, 0, unit(4), unit(4))]) == 1
    assert store.count_rows() == sum(1 + i % 3 for i in range(30)) - 2 + 1


def test_get_delete_and_complete_ids(store):
    items = store.get(["item-4", "missing", "item-2"])
    assert [i.id for i in items] == ["item-4", "item-2"]
    assert items[1].price == 2.0 and items[0].category == "Home" and len(items[1].images) == 3
    assert store.get(["item-7"])[0].price == -1.0  # no price: unknown
    half = item(50, pictures=3)  # a killed run wrote one of its three pictures
    store.upsert(pictures_of([half])[:1])
    assert store.complete_ids(["item-5", "item-50", "nope"]) == {"item-5"}
    assert store.delete(["item-4", "missing"]) == ["item-4"]
    assert store.count() == 30 and not store.search(plan(), unit(400), "", 1).hits[0].item.id == "item-4"


@pytest.mark.parametrize("kind,mode", [
    (QueryKind.IMAGE, Mode.DENSE), (QueryKind.TEXT, Mode.LEXICAL), (QueryKind.TEXT, Mode.HYBRID),
    (QueryKind.COMPOSED, Mode.HYBRID)])
def test_filters_hold_on_every_route(store, kind, mode):
    query, words = unit(0), "thing acme"
    only = store.search(plan(kind, mode), query, words, 30, SearchFilters(categories=['Odd "Q"'])).hits
    assert only and {h.item.category for h in only} == {'Odd "Q"'} and len(only) == 10
    cheap = store.search(plan(kind, mode), query, words, 30, SearchFilters(price_max=6)).hits
    assert cheap and all(0 <= h.item.price <= 6 for h in cheap)  # unknown (-1) is not cheap
    good = store.search(plan(kind, mode), query, words, 30,
                        SearchFilters(rating_min=4, categories=["Home"])).hits
    assert good and all(h.item.rating >= 4 and h.item.category == "Home" for h in good)


@pytest.mark.parametrize("hostile", ['Toys" or id != "', 'Toys\\" or category != "',
                                     "Toys' or '1'='1"])
def test_injection_attempts_are_literal_matches(store, hostile):
    filters = SearchFilters(categories=[hostile])
    assert store.search(plan(QueryKind.TEXT), unit(1), "thing", 30, filters).hits == []


def test_other_dimension_is_refused(settings, store):
    with pytest.raises(StoreError, match="holds 16-d vectors"):
        CatalogueStore(settings, DIM + 1).ensure_collection()


def test_unreachable_server_is_unavailable_quickly():
    settings = MilvusSettings(uri="http://127.0.0.1:9", timeout_s=2)
    store = CatalogueStore(settings, DIM)  # no I/O yet: nothing to fail
    for use in (store.ensure_collection, store.count, lambda: store.search(plan(), unit(0), "", 1).hits):
        start = time.monotonic()
        with pytest.raises(StoreUnavailable, match="127.0.0.1:9"):
            use()
        assert time.monotonic() - start < 10


def test_a_held_lite_file_is_a_clear_error(tmp_path):
    with foreign_holder(tmp_path / "held.db"):
        store = CatalogueStore(MilvusSettings(uri=str(tmp_path / "held.db"), lite_server=False),
                               DIM)
        with pytest.raises(StoreUnavailable, match="held by another process"):
            store.count()


def test_a_search_goes_through_the_planner_once(store):
    """The caller plans; the store and the engine adapter run the plan and never call back
    into the planner (plans.py), whatever the routes and their fusion."""
    from pardus.deployments.catalogue import plans

    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename == plans.__file__:
            calls.append(frame.f_code.co_name)

    def traced(call):
        sys.setprofile(profile)
        try:
            return call()
        finally:
            sys.setprofile(None)

    weighted = traced(lambda: make_plan(QueryKind.COMPOSED, SearchSettings(), Mode.HYBRID,
                                        Weights(dense=1, lexical=0.3)))
    assert calls == ["make_plan"]  # the tracer sees the planner when it runs
    calls.clear()
    for each in (plan(), plan(QueryKind.TEXT), plan(QueryKind.TEXT, Mode.LEXICAL), weighted):
        assert traced(lambda: store.search(each, unit(0), "thing acme", 5).hits)
    assert calls == []


def test_a_version_without_words_answers_from_its_vectors(settings):
    """BM25 over a version with no words at all fails inside the embedded core (code 2000,
    "Invalid sparse row: NaN"): a lexical search there finds nothing, a hybrid one answers
    from the vectors alone."""
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    try:
        assert store.search(plan(QueryKind.TEXT, Mode.LEXICAL), None, "thing", 5).hits == []
        assert store.search(plan(QueryKind.TEXT, Mode.HYBRID), unit(0), "thing", 5).hits == []
        bare = CatalogueItem(id="bare", title="", images=("bare.jpg",))
        store.upsert([Picture(bare, 0, unit(0), unit(0))])
        store.flush()
        assert store.search(plan(QueryKind.TEXT, Mode.LEXICAL), None, "thing", 5).hits == []
        hits = store.search(plan(QueryKind.TEXT, Mode.HYBRID), unit(0), "thing", 5).hits
        assert [h.item.id for h in hits] == ["bare"]
    finally:
        store.close()
