"""What a results page makes of a search's candidates: the relevance cut-off, the boosts, facet
counts and refinements, the sort, and the page itself.

The candidates are the search's window (the top search.window products, one per product).
Everything here works on that same set in the same way on every request, so a page and the
next one (its cursor) cut one ranking. Plain code over hits, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from pardus.deployments.catalogue.filters import Refinements
from pardus.deployments.catalogue.items import UNKNOWN, CatalogueItem
from pardus.deployments.catalogue.plans import SearchPlan
from pardus.deployments.catalogue.store import Hit
from pardus.deployments.errors import BadQuery
from pardus.deployments.names import FacetName, Mode, Sort, StockRule
from pardus.deployments.settings import Boosts, SearchSettings

RATING_BANDS = ("4-5", "3-4", "2-3", "1-2", "0-1")  # a band holds its lower edge (5 is in 4-5)


@dataclass(frozen=True)
class Ranked:
    hit: Hit
    relevance: float  # the share of the best candidate's score, 0-1
    boost: float  # what the boosts added (negative: took away)

    @property
    def final(self) -> float:
        return self.relevance + self.boost

    @property
    def item(self) -> CatalogueItem:
        return self.hit.item


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int  # products with this value, under the other facets' refinements
    selected: bool


@dataclass(frozen=True)
class Arranged:
    """One page of a search, and what the shopper can do next."""

    page: list[Ranked]
    total: int  # relevant products under the refinements (what the pages go through)
    relevant: int  # products above the relevance cut-off, before refinements
    facets: dict[FacetName, list[FacetValue]]
    next_offset: int | None  # where the next page starts; None: this is the last


# -- facet values of an item ------------------------------------------------------------------
def price_ranges(edges: Sequence[float]) -> list[str]:
    """The price facet's values, in order: 0-10, 10-25, ..., 500+."""
    bounds = [0, *edges]
    names = [f"{_number(a)}-{_number(b)}" for a, b in zip(bounds, bounds[1:])]
    return [*names, f"{_number(edges[-1])}+"]


def _number(value: float) -> str:
    return f"{value:g}"


def price_range(price: float, edges: Sequence[float]) -> str | None:
    if price == UNKNOWN:
        return None
    names = price_ranges(edges)
    for name, edge in zip(names, edges):
        if price < edge:
            return name
    return names[-1]


def rating_band(rating: float) -> str | None:
    if rating == UNKNOWN:
        return None
    low = min(4, max(0, int(math.floor(rating))))
    return f"{low}-{low + 1}"


def facet_value(item: CatalogueItem, facet: FacetName, edges: Sequence[float]) -> str | None:
    if facet is FacetName.CATEGORY:
        return item.category or None
    if facet is FacetName.BRAND:
        return item.brand or None
    if facet is FacetName.PRICE:
        return price_range(item.price, edges)
    return rating_band(item.rating)


def check_refinements(refine: Refinements, edges: Sequence[float]) -> None:
    """Price ranges and rating bands must be ones the facets name (a BadQuery says which)."""
    for facet, allowed in ((FacetName.PRICE, price_ranges(edges)),
                           (FacetName.RATING, list(RATING_BANDS))):
        wrong = [value for value in refine.of(facet) if value not in allowed]
        if wrong:
            raise BadQuery(f"refine.{facet.value}: {wrong} are not {facet.value} values; "
                           f"use {allowed}", code="invalid_refinement",
                           field=f"refine.{facet.value}")


# -- relevance and boosts -----------------------------------------------------------------------
def score_kind(plan: SearchPlan) -> str:
    """Which kind of score a plan's hits carry (relevance_floor's field)."""
    if plan.mode is Mode.HYBRID and plan.dense_field is not None:
        return plan.fusion.value
    return "lexical" if plan.mode is Mode.LEXICAL else "dense"


def rank(hits: Sequence[Hit], floor: float, boosts: Boosts) -> list[Ranked]:
    """The candidates above the relevance cut-off (a score of at least `floor` times the
    best), with what the boosts make of each, in their final order."""
    best = max((max(hit.score, 0.0) for hit in hits), default=0.0)
    popularity = [math.log1p(max(hit.item.popularity, 0.0)) for hit in hits]
    most_popular = max(popularity, default=0.0)
    ranked = []
    for hit, popular in zip(hits, popularity):
        relevance = max(hit.score, 0.0) / best if best > 0 else 0.0
        if relevance < floor:
            continue
        boost = 0.0
        if not hit.item.in_stock:
            if boosts.out_of_stock is StockRule.EXCLUDE:
                continue
            if boosts.out_of_stock is StockRule.DEMOTE:
                boost -= relevance * (1 - boosts.out_of_stock_factor)
        if boosts.popularity and most_popular > 0:
            boost += boosts.popularity * popular / most_popular
        ranked.append(Ranked(hit, relevance, boost))
    return sorted(ranked, key=_by_relevance)


# -- facets -----------------------------------------------------------------------------------
def _passes(ranked: Ranked, refine: Refinements, edges: Sequence[float],
            but: FacetName | None = None) -> bool:
    for facet in FacetName:
        chosen = refine.of(facet)
        if facet is not but and chosen and facet_value(ranked.item, facet, edges) not in chosen:
            return False
    return True


def count_facets(ranked: Sequence[Ranked], wanted: Sequence[FacetName], refine: Refinements,
                 settings: SearchSettings) -> dict[FacetName, list[FacetValue]]:
    """Each wanted facet's values with their counts, under the other facets' refinements but
    not its own (disjunctive faceting): what picking another value would give. Categories and
    brands list their most frequent values (search.facet_values); ranges and bands all, in
    order; a picked value is listed even when nothing has it."""
    edges = settings.price_ranges
    out = {}
    for facet in wanted:
        counts: dict[str, int] = {}
        for entry in ranked:
            if _passes(entry, refine, edges, but=facet):
                value = facet_value(entry.item, facet, edges)
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1
        chosen = refine.of(facet)
        if facet is FacetName.PRICE:
            names = price_ranges(edges)
        elif facet is FacetName.RATING:
            names = list(RATING_BANDS)
        else:
            names = sorted(counts, key=lambda v: (-counts[v], v))[:settings.facet_values]
        names = [n for n in names if counts.get(n) or n in chosen]
        names += [value for value in chosen if value not in names]
        out[facet] = [FacetValue(n, counts.get(n, 0), n in chosen) for n in names]
    return out


# -- sort and page -----------------------------------------------------------------------------
def _known_first(value: float, descending: bool) -> tuple[int, float]:
    """A sort key on a price or rating: unknown values last, either way."""
    if value == UNKNOWN:
        return (1, 0.0)
    return (0, -value if descending else value)


def _by_relevance(r: Ranked) -> tuple:
    """The final score, then the score itself (below zero relevance is 0 for all), then id."""
    return (-r.final, -r.hit.score, r.item.id)


SORT_KEYS: dict[Sort, Callable[[Ranked], tuple]] = {  # every key ends on relevance
    Sort.RELEVANCE: _by_relevance,
    Sort.PRICE_ASC: lambda r: (*_known_first(r.item.price, False), *_by_relevance(r)),
    Sort.PRICE_DESC: lambda r: (*_known_first(r.item.price, True), *_by_relevance(r)),
    Sort.RATING: lambda r: (*_known_first(r.item.rating, True), *_by_relevance(r)),
    Sort.NEWEST: lambda r: (r.item.added_at == 0, -r.item.added_at, *_by_relevance(r)),
}


def arrange(hits: Sequence[Hit], plan: SearchPlan, settings: SearchSettings, *,
            floor: float | None = None, boosts: Boosts | None = None,
            refine: Refinements | None = None, facets: Sequence[FacetName] = (),
            sort: Sort = Sort.RELEVANCE, offset: int = 0, k: int = 10) -> Arranged:
    """The page at `offset` of the candidates: cut off, boosted, refined, sorted."""
    refine = refine or Refinements()
    check_refinements(refine, settings.price_ranges)
    if floor is None:
        floor = getattr(settings.relevance_floor, score_kind(plan))
    ranked = rank(hits, floor, boosts or settings.boosts)
    counts = count_facets(ranked, facets, refine, settings)
    chosen = [entry for entry in ranked if _passes(entry, refine, settings.price_ranges)]
    chosen.sort(key=SORT_KEYS[sort])
    page = chosen[offset : offset + k]
    following = offset + len(page)
    return Arranged(page=page, total=len(chosen), relevant=len(ranked), facets=counts,
                    next_offset=following if following < len(chosen) else None)
