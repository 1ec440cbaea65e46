"""A results page's logic over candidates: cut-off, boosts, disjunctive facets, sorts, pages."""

from __future__ import annotations

import random

import pytest

from pardus.deployments.catalogue.filters import Refinements
from pardus.deployments.catalogue.items import UNKNOWN, CatalogueItem
from pardus.deployments.catalogue.plans import make_plan
from pardus.deployments.catalogue.results import (
    arrange,
    count_facets,
    facet_value,
    price_range,
    rank,
    rating_band,
)
from pardus.deployments.catalogue.store import Hit
from pardus.deployments.errors import BadQuery
from pardus.deployments.names import FacetName, Mode, QueryKind, Sort, StockRule
from pardus.deployments.settings import Boosts, SearchSettings

SETTINGS = SearchSettings(price_ranges=[10, 25, 50], facet_values=3)
PLAN = make_plan(QueryKind.IMAGE, SETTINGS, Mode.DENSE)
KEEP = Boosts(out_of_stock=StockRule.KEEP)


def hit(i: int, score: float, category="bags", brand="korvex", price=20.0, rating=4.0,
        in_stock=True, popularity=0.0, added_at=0) -> Hit:
    item = CatalogueItem(id=f"i{i:03d}", title=f"item {i}", category=category, brand=brand,
                         price=price, rating=rating, images=("a.jpg",), in_stock=in_stock,
                         popularity=popularity, added_at=added_at)
    return Hit(item, 0, score)


def catalogue(n: int = 200, seed: int = 0) -> list[Hit]:
    rng = random.Random(seed)
    return [hit(i, 1.0 - i / n, category=rng.choice(["bags", "mugs", "cases"]),
                brand=rng.choice(["korvex", "almira", "tessly", "velmo"]),
                price=rng.choice([UNKNOWN, 5.0, 12.0, 30.0, 70.0]),
                rating=rng.choice([UNKNOWN, 1.5, 3.2, 4.0, 5.0]), added_at=rng.randrange(1, 10**6))
            for i in range(n)]


def test_ranges_and_bands():
    assert [price_range(p, [10, 25]) for p in (0, 9.99, 10, 24, 25, 1e6, UNKNOWN)] == [
        "0-10", "0-10", "10-25", "10-25", "25+", "25+", None]
    assert [rating_band(r) for r in (0, 0.9, 1, 3.99, 4, 5, UNKNOWN)] == [
        "0-1", "0-1", "1-2", "3-4", "4-5", "4-5", None]


def test_the_cut_off_is_a_share_of_the_best_score():
    hits = [hit(0, 0.8), hit(1, 0.5), hit(2, 0.39), hit(3, -0.2)]
    assert [r.item.id for r in rank(hits, 0.5, KEEP)] == ["i000", "i001"]
    assert [round(r.relevance, 3) for r in rank(hits, 0.0, KEEP)] == [1.0, 0.625, 0.487, 0.0]


def test_out_of_stock_is_kept_demoted_or_left_out():
    hits = [hit(0, 1.0, in_stock=False), hit(1, 0.8)]
    assert [r.item.id for r in rank(hits, 0, KEEP)] == ["i000", "i001"]
    demoted = rank(hits, 0, Boosts(out_of_stock=StockRule.DEMOTE, out_of_stock_factor=0.5))
    assert [r.item.id for r in demoted] == ["i001", "i000"]
    assert (demoted[1].relevance, demoted[1].boost, demoted[1].final) == (1.0, -0.5, 0.5)
    assert [r.item.id for r in rank(hits, 0, Boosts(out_of_stock=StockRule.EXCLUDE))] == ["i001"]


def test_popularity_lifts_by_its_weight():
    hits = [hit(0, 1.0, popularity=0), hit(1, 0.9, popularity=1000)]
    assert [r.item.id for r in rank(hits, 0, KEEP)] == ["i000", "i001"]
    lifted = rank(hits, 0, Boosts(out_of_stock=StockRule.KEEP, popularity=0.2))
    assert [r.item.id for r in lifted] == ["i001", "i000"] and lifted[0].boost == 0.2


def brute_counts(hits, refine: Refinements, facet: FacetName) -> dict[str, int]:
    """What disjunctive counts must be, the slow way: apply every other facet's choice."""
    counts: dict[str, int] = {}
    for h in hits:
        ok = all(not refine.of(f) or facet_value(h.item, f, SETTINGS.price_ranges)
                 in refine.of(f) for f in FacetName if f is not facet)
        value = facet_value(h.item, facet, SETTINGS.price_ranges)
        if ok and value is not None:
            counts[value] = counts.get(value, 0) + 1
    return counts


@pytest.mark.parametrize("seed", range(5))
def test_facet_counts_leave_out_their_own_choice(seed):
    hits = catalogue(seed=seed)
    ranked = rank(hits, 0, KEEP)
    refine = Refinements(category=["bags", "mugs"], brand=["korvex"], price=["10-25", "50+"])
    settings = SETTINGS.model_copy(update={"facet_values": 10})
    counts = count_facets(ranked, list(FacetName), refine, settings)
    for facet in FacetName:
        listed = {v.value: v.count for v in counts[facet] if v.count}
        assert listed == brute_counts(hits, refine, facet), facet
        assert {v.value for v in counts[facet] if v.selected} == set(refine.of(facet))
    page = arrange(hits, PLAN, settings, floor=0, boosts=KEEP, refine=refine, k=500)
    kept = {h.item.id for h in hits if all(
        not refine.of(f) or facet_value(h.item, f, SETTINGS.price_ranges) in refine.of(f)
        for f in FacetName)}
    assert {r.item.id for r in page.page} == kept and page.total == len(kept)


def test_a_picked_value_is_listed_even_when_nothing_has_it():
    counts = count_facets(rank(catalogue(), 0, KEEP), [FacetName.BRAND],
                          Refinements(brand=["nobody"]), SETTINGS)
    assert any(v.value == "nobody" and v.count == 0 and v.selected
               for v in counts[FacetName.BRAND])
    assert len([v for v in counts[FacetName.BRAND] if not v.selected]) <= 3  # facet_values


@pytest.mark.parametrize("sort", list(Sort))
def test_pages_cut_one_ranking_with_nothing_twice_and_nothing_skipped(sort):
    hits = catalogue(1200)
    everything = arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP, sort=sort, k=5000)
    shown, offset = [], 0
    while offset is not None:
        page = arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP, sort=sort, offset=offset,
                       k=37)
        shown += [r.item.id for r in page.page]
        offset = page.next_offset
    assert shown == [r.item.id for r in everything.page] and len(shown) == 1200
    assert len(set(shown)) == 1200


def test_sorts_order_known_values_and_put_unknown_last():
    hits = catalogue(300)
    by_price = arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP, sort=Sort.PRICE_ASC,
                       k=300).page
    prices = [r.item.price for r in by_price]
    known = [p for p in prices if p != UNKNOWN]
    assert known == sorted(known) and prices[len(known):] == [UNKNOWN] * (300 - len(known))
    down = [r.item.price for r in arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP,
                                          sort=Sort.PRICE_DESC, k=300).page]
    assert [p for p in down if p != UNKNOWN] == sorted(known, reverse=True)
    ratings = [r.item.rating for r in arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP,
                                              sort=Sort.RATING, k=300).page]
    rated = [r for r in ratings if r != UNKNOWN]
    assert rated == sorted(rated, reverse=True) and ratings[len(rated):] == [UNKNOWN] * (
        300 - len(rated))
    newest = [r.item.added_at for r in arrange(hits, PLAN, SETTINGS, floor=0, boosts=KEEP,
                                               sort=Sort.NEWEST, k=300).page]
    assert newest == sorted(newest, reverse=True)


def test_a_sort_reorders_only_the_relevant_candidates():
    """Sorting by price never surfaces what barely matches: the cut-off comes first."""
    hits = [hit(0, 1.0, price=90), hit(1, 0.9, price=50), hit(2, 0.05, price=1)]
    page = arrange(hits, PLAN, SETTINGS, floor=0.5, boosts=KEEP, sort=Sort.PRICE_ASC).page
    assert [r.item.id for r in page] == ["i001", "i000"]


def test_refinements_name_real_ranges_and_bands():
    with pytest.raises(BadQuery) as caught:
        arrange(catalogue(10), PLAN, SETTINGS, refine=Refinements(price=["cheap"]))
    assert caught.value.field == "refine.price" and "0-10" in caught.value.message
    with pytest.raises(BadQuery):
        arrange(catalogue(10), PLAN, SETTINGS, refine=Refinements(rating=["5+"]))
