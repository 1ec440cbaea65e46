"""The metric functions against hand-computed cases: ties, graded gains, short rankings, chance."""

from __future__ import annotations

import math
import random

import pytest

from pardus.evaluation.metrics import (
    Scores,
    chance,
    chance_ndcg,
    chance_recall,
    chance_reciprocal_rank,
    ideal_dcg,
    ndcg_at,
    percentile,
    recall_at,
    reciprocal_rank,
    score,
)

LOG3 = math.log2(3)  # the discount at rank 2


def test_recall_counts_relevant_items_found_in_the_first_k():
    grades = {"a": 1, "b": 1, "c": 1}
    ranked = ["a", "x", "b", "y"]
    assert recall_at(ranked, grades, 1) == pytest.approx(1 / 3)
    assert recall_at(ranked, grades, 2) == pytest.approx(1 / 3)
    assert recall_at(ranked, grades, 4) == pytest.approx(2 / 3)
    # fewer results than k: the missing positions hold nothing relevant
    assert recall_at(ranked, grades, 10) == pytest.approx(2 / 3)
    assert recall_at([], grades, 10) == 0.0


def test_one_relevant_item_makes_recall_the_hit_rate():
    assert recall_at(["x", "a"], {"a": 1}, 1) == 0.0
    assert recall_at(["x", "a"], {"a": 1}, 2) == 1.0


def test_an_id_returned_twice_counts_once_at_its_first_rank():
    grades = {"a": 1, "b": 1, "c": 1}
    assert recall_at(["a", "a", "b"], grades, 2) == pytest.approx(2 / 3)
    assert reciprocal_rank(["x", "x", "a"], grades) == pytest.approx(1 / 2)


def test_ties_keep_the_order_they_came_in():
    """Metrics see ids, not scores: two results with equal scores rank as returned."""
    grades = {"a": 1}
    assert reciprocal_rank(["x", "a"], grades) == 0.5  # a tied with x, returned second
    assert reciprocal_rank(["a", "x"], grades) == 1.0
    # ties in the judgments: the ideal order of equal gains does not matter
    assert ideal_dcg({"a": 1, "b": 1}, 10) == pytest.approx(1 + 1 / LOG3)
    assert ndcg_at(["b", "a"], {"a": 1, "b": 1}, 10) == pytest.approx(1.0)


def test_ndcg_with_graded_gains():
    grades = {"a": 2, "b": 1}
    # DCG = 1/log2(2) + 2/log2(3) = 2.2618595; ideal = 2 + 1/log2(3) = 2.6309298
    assert ndcg_at(["b", "a"], grades, 10) == pytest.approx(0.859719, abs=1e-6)
    assert ndcg_at(["a", "b"], grades, 10) == pytest.approx(1.0)
    assert ndcg_at(["x", "a"], grades, 10) == pytest.approx((2 / LOG3) / (2 + 1 / LOG3))
    # a judged gain of 0 is not relevant; unjudged items count 0
    assert ndcg_at(["b", "a"], {"a": 3, "b": 0}, 10) == pytest.approx(1 / LOG3)
    assert ndcg_at(["a"], grades, 1) == 1.0
    assert ndcg_at([], grades, 10) == 0.0


def test_ideal_dcg_stops_at_k():
    grades = {f"i{n}": 1 for n in range(12)}
    assert ndcg_at(list(grades), grades, 10) == pytest.approx(1.0)
    assert recall_at(list(grades), grades, 10) == pytest.approx(10 / 12)


def test_reciprocal_rank_and_score():
    assert reciprocal_rank(["x", "y", "a"], {"a": 1}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y"], {"a": 1}) == 0.0
    scores = score(["x", "a", "y", "z", "w", "b"], {"a": 2, "b": 1})
    assert (scores.recall_1, scores.recall_5, scores.recall_10) == (0.0, 0.5, 1.0)
    assert scores.mrr == 0.5
    dcg = 2 / LOG3 + 1 / math.log2(7)
    assert scores.ndcg_10 == pytest.approx(dcg / (2 + 1 / LOG3))


def test_a_query_without_a_relevant_item_is_refused():
    with pytest.raises(ValueError, match="relevant"):
        recall_at(["a"], {"a": 0}, 10)
    with pytest.raises(ValueError, match="relevant"):
        ndcg_at(["a"], {}, 10)


def test_chance_levels_by_formula():
    assert chance_recall(40, 10) == 0.25
    assert chance_recall(6, 10) == 1.0  # a catalogue smaller than k: everything comes back
    # one relevant item in 20: (1/20) * (1 + 1/2 + ... + 1/10)
    harmonic = sum(1 / r for r in range(1, 11))
    assert chance_reciprocal_rank(1, 20, 10) == pytest.approx(harmonic / 20)
    discounts = sum(1 / math.log2(r + 1) for r in range(1, 11))
    assert chance_ndcg({"a": 1}, 10, 10) == pytest.approx(discounts / 10)
    assert chance({"a": 1}, 40).recall_10 == 0.25
    with pytest.raises(ValueError):
        chance({"a": 1, "b": 1}, 1)


def test_chance_levels_match_random_rankings():
    """The expectations agree with shuffled catalogues (graded, several relevant)."""
    grades = {"a": 2, "b": 1, "c": 1}
    catalogue = ["a", "b", "c"] + [f"x{n}" for n in range(27)]
    rng = random.Random(0)
    runs = []
    for _ in range(20_000):
        rng.shuffle(catalogue)
        runs.append(score(catalogue[:10], grades))
    simulated, expected = Scores.mean(runs), chance(grades, len(catalogue))
    for name in ("recall_1", "recall_5", "recall_10", "ndcg_10", "mrr"):
        assert getattr(simulated, name) == pytest.approx(getattr(expected, name), abs=0.01), name


def test_mean_and_percentiles():
    mean = Scores.mean([Scores(1, 1, 1, 1, 1), Scores(0, 0, 1, 0.5, 0)])
    assert mean == Scores(0.5, 0.5, 1.0, 0.75, 0.5)
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError):
        percentile([], 50)
