"""A results page on the Milvus 2.5 server fixture (the core over TCP), through SearchService:
pages deeper than 1,000 products, cursors bound to their search, disjunctive facets, sorts
above the cut-off, boosts, similar items, attribute updates under searches, and what a
catalogue written before the signals says."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import numpy as np
import pytest
from pymilvus import MilvusClient

from pardus.deployments.catalogue import schema
from pardus.deployments.catalogue.filters import Refinements, SearchFilters
from pardus.deployments.catalogue.items import UNKNOWN, CatalogueItem
from pardus.deployments.catalogue.results import facet_value
from pardus.deployments.catalogue.store import CatalogueStore, Picture
from pardus.deployments.embedder.queries import Embedding, PictureVectors
from pardus.deployments.errors import BadQuery, Conflict, NotFound
from pardus.deployments.names import FacetName, Sort, StockRule
from pardus.deployments.settings import Boosts, Settings
from pardus.serve.factory import build_search_service
from pardus.serve.search import Models, Query, SearchService

DIM = 8
ITEMS = 1200
NO_FLOOR = {"dense": 0, "lexical": 0, "rrf": 0, "weighted": 0}
KEEP = Boosts(out_of_stock=StockRule.KEEP)


def unit(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    row = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return row / np.linalg.norm(row)


def product(i: int) -> CatalogueItem:
    return CatalogueItem(
        id=f"p{i:05d}", title=f"product {i}", category=("bags", "mugs", "cases")[i % 3],
        brand=("korvex", "almira", "tessly", "velmo")[i % 4],
        price=UNKNOWN if i % 11 == 0 else float((i * 7) % 100),
        rating=UNKNOWN if i % 13 == 0 else (i % 50) / 10, images=(f"{i}-0.jpg", f"{i}-1.jpg"),
        in_stock=i % 5 != 0, popularity=float(i % 97), added_at=10**9 + i)


def fill(settings: Settings) -> None:
    store = CatalogueStore(settings.milvus, DIM)
    store.ensure_collection()
    pictures = [Picture(product(i), j, unit(f"product {i}#{j}"), unit(f"product {i}#{j}"))
                for i in range(ITEMS) for j in range(2)]
    for start in range(0, len(pictures), 600):
        store.upsert(pictures[start : start + 600])
    store.flush()
    store.close()


@pytest.fixture(scope="module")
def settings(milvus_server, tmp_path_factory) -> Settings:
    settings = Settings(embedder={"dim": DIM},
                        search={"mode": "dense", "window": 1500, "relevance_floor": NO_FLOOR},
                        milvus={"uri": milvus_server, "collection": "p_" + uuid.uuid4().hex[:8],
                                "timeout_s": 20, "consistency_level": "Strong"},
                        serving={"image_root": str(tmp_path_factory.mktemp("images"))})
    fill(settings)
    return settings


async def embed(query):
    return Embedding(unit(query.text))


async def never(query):
    raise AssertionError("similar items use the stored vectors: no embedding call")


async def pictures(batch):
    return [PictureVectors(unit(p.title), unit(p.title)) for p in batch]


def service(settings: Settings, embed=embed) -> SearchService:
    return build_search_service(settings, Models(embed, pictures, None, {}))


def run(coro):
    return asyncio.run(coro)


def all_pages(svc: SearchService, query: Query) -> list:
    async def walk():
        shown, cursor = [], None
        while True:
            page = await svc.search(Query(**{**query.__dict__, "cursor": cursor}))
            shown.append(page)
            cursor = page.next
            if cursor is None:
                return shown

    return run(walk())


def test_pages_go_past_a_thousand_products_with_none_twice_or_skipped(settings):
    pages = all_pages(service(settings), Query(text="a bag", k=100, rerank=False, boosts=KEEP))
    ids = [r.id for page in pages for r in page.results]
    assert len(ids) == ITEMS == pages[0].total and len(set(ids)) == ITEMS
    everything = run(service(settings).search(Query(text="a bag", k=100, rerank=False,
                                                    boosts=KEEP)))
    assert [r.id for r in pages[0].results] == [r.id for r in everything.results]
    assert [r.retrieval_rank for r in pages[3].results] == list(range(301, 401))
    scores = [r.score for page in pages for r in page.results]
    assert scores == sorted(scores, reverse=True)


def test_a_cursor_continues_only_its_own_search(settings):
    svc = service(settings)
    first = run(svc.search(Query(text="a bag", k=5, rerank=False, sort=Sort.PRICE_ASC)))
    follow = Query(text="a bag", k=5, rerank=False, sort=Sort.PRICE_ASC, cursor=first.next)
    second = run(svc.search(follow))
    assert not {r.id for r in first.results} & {r.id for r in second.results}
    for other in (Query(text="a mug", k=5, rerank=False, sort=Sort.PRICE_ASC,
                        cursor=first.next),
                  Query(text="a bag", k=5, rerank=False, cursor=first.next),
                  Query(text="a bag", k=5, rerank=False, sort=Sort.PRICE_ASC,
                        refine=Refinements(brand=["korvex"]), cursor=first.next)):
        with pytest.raises(BadQuery) as caught:
            run(svc.search(other))
        assert caught.value.code == "cursor_mismatch"
    tampered = first.next[:-2] + ("AA" if not first.next.endswith("AA") else "BB")
    with pytest.raises(BadQuery) as caught:
        run(svc.search(Query(text="a bag", k=5, rerank=False, sort=Sort.PRICE_ASC,
                             cursor=tampered)))
    assert caught.value.code == "invalid_cursor"


def test_a_cursor_from_a_version_no_longer_live_has_expired(settings):
    local = settings.model_copy(deep=True)
    local.milvus.collection = "v_" + uuid.uuid4().hex[:8]
    store = CatalogueStore(local.milvus, DIM)
    store.ensure_collection()
    store.upsert([Picture(product(i), 0, unit(f"p{i}"), unit(f"p{i}")) for i in range(30)])
    svc = service(local)
    first = run(svc.search(Query(text="x", k=5, rerank=False)))
    newer = CatalogueStore(local.milvus, DIM, version="v2")
    newer.ensure_collection()
    newer.upsert([Picture(product(i), 0, unit(f"p{i}"), unit(f"p{i}")) for i in range(30)])
    newer.promote("v2")
    local.milvus.alias_refresh_s = 0
    with pytest.raises(BadQuery) as caught:
        run(service(local).search(Query(text="x", k=5, rerank=False, cursor=first.next)))
    assert caught.value.code == "cursor_expired"
    store.close()
    newer.close()


def test_facets_count_each_value_under_the_other_facets_picks(settings):
    refine = Refinements(category=["bags", "mugs"], brand=["korvex"], price=["10-25", "250-500",
                                                                             "50-100"])
    page = run(service(settings).search(Query(
        text="a bag", k=10, rerank=False, facets=tuple(FacetName), refine=refine)))
    items = [product(i) for i in range(ITEMS)]
    edges = settings.search.price_ranges
    for facet in page.facets:
        others = [f for f in FacetName if f is not facet.name]
        expected: dict[str, int] = {}
        for item in items:
            if all(not refine.of(f) or facet_value(item, f, edges) in refine.of(f)
                   for f in others):
                value = facet_value(item, facet.name, edges)
                if value is not None:
                    expected[value] = expected.get(value, 0) + 1
        counted = {v.value: v.count for v in facet.values if v.count}
        if facet.name in (FacetName.CATEGORY, FacetName.BRAND):
            assert counted == expected  # 3 and 4 values: under facet_values
        else:
            assert counted == expected, facet.name
    chosen = [i for i in items if all(not refine.of(f) or facet_value(i, f, edges)
                                      in refine.of(f) for f in FacetName)]
    assert page.total == len(chosen)
    assert all(r.category in ("bags", "mugs") and r.brand == "korvex" for r in page.results)


def test_a_sort_orders_the_relevant_products_only(settings):
    svc = service(settings)
    floor = 0.9
    relevant = run(svc.search(Query(text="a bag", k=100, rerank=False, min_relevance=floor,
                                    debug=True)))
    by_price = run(svc.search(Query(text="a bag", k=100, rerank=False, min_relevance=floor,
                                    sort=Sort.PRICE_ASC, debug=True)))
    assert by_price.total == relevant.total < ITEMS
    prices = [r.price for r in by_price.results if r.price is not None]
    assert prices == sorted(prices)
    assert all(r.debug.relevance >= floor for r in by_price.results)
    newest = run(svc.search(Query(text="a bag", k=50, rerank=False, sort=Sort.NEWEST)))
    assert [r.added_at for r in newest.results] == sorted((r.added_at for r in newest.results),
                                                          reverse=True)


def test_boosts_and_what_debug_shows(settings):
    svc = service(settings)
    kept = run(svc.search(Query(text="a bag", k=60, rerank=False, boosts=KEEP, debug=True)))
    out = [r for r in kept.results if not r.in_stock]
    assert out and all(r.debug.boost == 0 for r in kept.results)
    excluded = run(svc.search(Query(text="a bag", k=60, rerank=False, debug=True,
                                    boosts=Boosts(out_of_stock=StockRule.EXCLUDE))))
    assert all(r.in_stock for r in excluded.results)
    assert excluded.total == sum(product(i).in_stock for i in range(ITEMS))
    demoted = run(svc.search(Query(text="a bag", k=100, rerank=False, debug=True, boosts=Boosts(
        out_of_stock=StockRule.DEMOTE, out_of_stock_factor=0.1, popularity=0.3))))
    for r in demoted.results:
        assert r.debug.final == pytest.approx(r.debug.relevance + r.debug.boost, abs=1e-5)
        if not r.in_stock:
            assert r.debug.boost < 0.3 - 0.9 * r.debug.relevance + 1e-5
    finals = [r.debug.final for r in demoted.results]
    assert finals == sorted(finals, reverse=True)


def test_similar_items_use_the_stored_vector_and_leave_the_item_out(settings):
    svc = service(settings, embed=never)
    first = run(svc.similar("p00042", Query(k=20)))
    assert first.results and "p00042" not in {r.id for r in first.results}
    assert len({r.id for r in first.results}) == 20 and first.kind == "image"
    second = run(svc.similar("p00042", Query(k=20, cursor=first.next)))
    assert not {r.id for r in first.results} & {r.id for r in second.results}
    mugs = run(svc.similar("p00042", Query(k=20, filters=SearchFilters(categories=["mugs"]))))
    assert mugs.results and {r.category for r in mugs.results} == {"mugs"}
    with pytest.raises(NotFound):
        run(svc.similar("no-such", Query(k=5)))


def test_attribute_updates_reach_every_row_while_searches_run(settings):
    """Out of stock and back, popularity up, while searches for the item keep running: no
    search finds it twice, every search after the updates finds it once, and its rows stay
    two (none lost, none doubled) with the last values. A search that runs at the very moment
    of an update may miss the item: the Milvus 2.5 core's upsert is a delete and an insert
    that a reader can fall between (README: Results pages)."""
    svc = service(settings)
    target = "p00007"
    text = "product 7#0"  # the vector of the item's main picture

    async def searches(stop: asyncio.Event) -> list[int]:
        seen = []
        while not stop.is_set():
            page = await svc.search(Query(text=text, k=5, rerank=False, boosts=KEEP))
            seen.append([r.id for r in page.results].count(target))
        return seen

    async def scenario():
        stop = asyncio.Event()
        watcher = asyncio.create_task(searches(stop))
        for round_ in range(8):
            item = await svc.patch(target, {"in_stock": round_ % 2 == 1,
                                            "popularity": float(round_)})
            assert item.popularity == round_
        stop.set()
        return await watcher

    seen = run(scenario())
    assert seen and max(seen) == 1, seen
    after = run(svc.search(Query(text=text, k=5, rerank=False, boosts=KEEP)))
    assert [r.id for r in after.results].count(target) == 1
    assert [r for r in after.results if r.id == target][0].popularity == 7.0
    store = CatalogueStore(settings.milvus, DIM)
    rows = store._query(f'item_id == "{target}"', ["row_id", "in_stock", "popularity"])
    assert sorted(r["row_id"] for r in rows) == [f"{target}#0", f"{target}#1"]
    assert {(r["in_stock"], r["popularity"]) for r in rows} == {(True, 7.0)}
    store.close()
    with pytest.raises(NotFound):
        run(svc.patch("no-such", {"in_stock": False}))


def test_a_catalogue_written_before_the_signals_searches_and_says_what_to_do(milvus_server):
    """A version of schema 2 (no in_stock, popularity, added_at) still answers searches; a
    facet, sort or update asks for a new version."""
    settings = Settings(embedder={"dim": DIM}, search={"mode": "dense"},
                        milvus={"uri": milvus_server, "collection": "old_" + uuid.uuid4().hex[:6],
                                "consistency_level": "Strong"})
    name = f"{settings.milvus.collection}__v1"
    client = MilvusClient(milvus_server)
    old = schema.collection_schema(DIM)
    for field in [f for f in old.fields if f.name in schema.SIGNAL_FIELDS]:
        old.fields.remove(field)  # what schema 2 wrote
    client.create_collection(name, schema=old, index_params=schema.index_params(
        client, settings.milvus))
    row = {"row_id": "a#0", "item_id": "a", "image_index": 0, "image_count": 1,
           schema.IMAGE_VECTOR: unit("a").tolist(), schema.PAIR_VECTOR: unit("a thing").tolist(),
           "words": "a thing", "title": "a thing", "category": "bags", "brand": "korvex",
           "price": 3.0, "rating": 4.0, "images": ["a.jpg"], "ingested_at": 1}
    client.insert(name, [row])
    client.close()
    CatalogueStore(settings.milvus).promote("v1")
    svc = service(settings)
    found = run(svc.search(Query(text="a thing", k=5, rerank=False)))
    assert [r.id for r in found.results] == ["a"] and found.results[0].in_stock
    for asks in (Query(text="x", facets=(FacetName.CATEGORY,)), Query(text="x",
                                                                       sort=Sort.PRICE_ASC)):
        with pytest.raises(Conflict) as caught:
            run(svc.search(asks))
        assert caught.value.code == "catalogue_outdated" and "--version" in caught.value.message
    with pytest.raises(Conflict):
        run(svc.patch("a", {"in_stock": False}))
