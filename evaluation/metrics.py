"""Ranking metrics as pure functions: recall@k, nDCG@k, reciprocal rank, their chance levels.

Conventions (the README's "Relevance" section says the same):
- A ranking is the list of item ids as the service returned it, best first. Ranks are the
  positions in that list: items with equal scores keep the order they came in (the service's
  order is the one a shopper sees), so no tie is broken or averaged here. An id seen twice
  counts once, at its first position.
- Relevance is graded: `grades` maps an item id to a gain >= 0; an item is relevant when its
  gain is > 0. Unjudged items have gain 0.
- recall@k = relevant items in the first k / all relevant items (for a query with one
  relevant item it is the hit rate).
- nDCG@k uses linear gains, DCG = sum(gain / log2(rank + 1)), and the ideal DCG of the judged
  gains sorted best first.
- The reciprocal rank is 1 / the rank of the first relevant item among the results returned,
  0 when none is (MRR over a run is its mean: MRR@k for k results asked).
- Fewer than k results: the missing positions count as not relevant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

RECALL_DEPTHS = (1, 5, 10)
NDCG_DEPTH = 10
DEPTH = max(*RECALL_DEPTHS, NDCG_DEPTH)  # results asked per query


@dataclass(frozen=True)
class Scores:
    """The metrics of one query (or their mean over queries)."""

    recall_1: float
    recall_5: float
    recall_10: float
    ndcg_10: float
    mrr: float

    @staticmethod
    def mean(scores: Sequence[Scores]) -> Scores:
        if not scores:
            raise ValueError("the mean of no scores")
        n = len(scores)
        return Scores(*(sum(getattr(s, name) for s in scores) / n for name in SCORE_NAMES))


SCORE_NAMES = ("recall_1", "recall_5", "recall_10", "ndcg_10", "mrr")


def _first_seen(ranked: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(ranked))


def _relevant(grades: Mapping[str, float]) -> set[str]:
    return {item for item, gain in grades.items() if gain > 0}


def recall_at(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    """Relevant items among the first k / relevant items."""
    relevant = _relevant(grades)
    if not relevant:
        raise ValueError("a query needs at least one relevant item")
    found = relevant.intersection(_first_seen(ranked)[:k])
    return len(found) / len(relevant)


def _dcg(gains: Sequence[float]) -> float:
    return sum(gain / math.log2(rank + 1) for rank, gain in enumerate(gains, start=1))


def ideal_dcg(grades: Mapping[str, float], k: int) -> float:
    """The DCG of the judged gains sorted best first (ties in gain: any order, same value)."""
    return _dcg(sorted((g for g in grades.values() if g > 0), reverse=True)[:k])


def ndcg_at(ranked: Sequence[str], grades: Mapping[str, float], k: int) -> float:
    ideal = ideal_dcg(grades, k)
    if ideal <= 0:
        raise ValueError("a query needs at least one relevant item")
    return _dcg([grades.get(item, 0.0) for item in _first_seen(ranked)[:k]]) / ideal


def reciprocal_rank(ranked: Sequence[str], grades: Mapping[str, float]) -> float:
    relevant = _relevant(grades)
    for rank, item in enumerate(_first_seen(ranked), start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def score(ranked: Sequence[str], grades: Mapping[str, float]) -> Scores:
    """Every metric of one query's ranking (ranked: the ids returned, best first)."""
    ranked = _first_seen(ranked)[:DEPTH]
    return Scores(recall_1=recall_at(ranked, grades, 1), recall_5=recall_at(ranked, grades, 5),
                  recall_10=recall_at(ranked, grades, 10),
                  ndcg_10=ndcg_at(ranked, grades, NDCG_DEPTH),
                  mrr=reciprocal_rank(ranked, grades))


# -- chance: the expected metrics of a ranking drawn uniformly at random from the catalogue ----
def chance_recall(items: int, k: int) -> float:
    """Each relevant item lands in the first k with probability k / items."""
    return min(k, items) / items


def chance_ndcg(grades: Mapping[str, float], items: int, k: int) -> float:
    """Every position holds an item drawn uniformly: its expected gain is the mean gain."""
    mean_gain = sum(g for g in grades.values() if g > 0) / items
    expected = sum(mean_gain / math.log2(rank + 1) for rank in range(1, min(k, items) + 1))
    return expected / ideal_dcg(grades, k)


def chance_reciprocal_rank(relevant: int, items: int, k: int) -> float:
    """Sum over ranks r <= k of 1/r * P(the first relevant item is at r)."""
    expected, none_yet = 0.0, 1.0  # P(no relevant item in the first r - 1)
    for rank in range(1, min(k, items) + 1):
        remaining = items - rank + 1
        expected += none_yet * relevant / remaining / rank
        none_yet *= (remaining - relevant) / remaining
        if none_yet <= 0:
            break
    return expected


def chance(grades: Mapping[str, float], items: int) -> Scores:
    """The expected scores of a random ranking of a catalogue of `items` items."""
    relevant = len(_relevant(grades))
    if items < relevant or items <= 0:
        raise ValueError(f"a catalogue of {items} items cannot hold {relevant} relevant ones")
    return Scores(*(chance_recall(items, k) for k in RECALL_DEPTHS),
                  ndcg_10=chance_ndcg(grades, items, NDCG_DEPTH),
                  mrr=chance_reciprocal_rank(relevant, items, DEPTH))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("the percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
