"""The generated benchmark: deterministic, its answers right by construction, its files a valid
query set and an Amazon-style manifest with several pictures per item."""

from __future__ import annotations

import json
from collections import Counter

from PIL import Image

from pardus.deployments.names import QueryKind
from pardus.evaluation.generate import make_benchmark, write_benchmark
from pardus.evaluation.queries import parse_queries


def test_the_same_seed_draws_the_same_benchmark():
    one, two = make_benchmark(60, 30, seed=3), make_benchmark(60, 30, seed=3)
    assert one.products == two.products
    assert [(q.text, q.grades, q.tag) for q in one.queries] == \
        [(q.text, q.grades, q.tag) for q in two.queries]
    other = make_benchmark(60, 30, seed=4)
    assert [p.title for p in other.products] != [p.title for p in one.products]


def test_titles_hold_the_attributes_and_a_unique_model_number():
    bench = make_benchmark(80, 30)
    for p in bench.products:
        assert p.title == f"{p.brand} {p.color} {p.pattern} {p.kind} {p.model}"
    assert len({p.model for p in bench.products}) == 80
    assert {p.views for p in bench.products} == {1, 2, 3}


def test_the_right_answers_follow_from_the_looks():
    bench = make_benchmark(80, 60)
    by_id = {p.id: p for p in bench.products}
    assert Counter(q.tag for q in bench.queries if q.picture is None) == {
        "attributes": 10, "model-number": 10}
    for q in bench.queries:
        assert set(q.grades) <= set(by_id) and max(q.grades.values()) > 0
        if q.tag == "attributes":  # "red striped mug": that look 2, same colour and shape 1
            color, pattern, kind = next(
                p.look for p in bench.products if f"{p.color} {p.pattern} {p.kind}" == q.text)
            for p in bench.products:
                want = 2 if p.look == (color, pattern, kind) else (
                    1 if (p.color, p.kind) == (color, kind) else 0)
                assert q.grades.get(p.id, 0) == want, (q.text, p.title)
        elif q.tag == "model-number":
            (only,) = q.grades
            assert q.text == f"{by_id[only].brand} {by_id[only].model}"
        elif q.tag.startswith("change-"):  # every product with the changed look
            looks = {by_id[i].look for i in q.grades}
            assert len(looks) == 1
            assert set(q.grades) == {p.id for p in bench.products if p.look in looks}
            assert any(q.text.endswith(f" {value}") for value in looks.pop())
        else:  # the product itself 2, its look-alikes 1
            (best,) = [i for i, g in q.grades.items() if g == 2]
            assert all(by_id[i].look == by_id[best].look for i in q.grades)


def test_composed_queries_balance_the_kinds_of_change():
    bench = make_benchmark(80, 60)
    changes = Counter(q.tag for q in bench.queries if q.tag.startswith("change-"))
    assert changes == {"change-color": 7, "change-kind": 7, "change-pattern": 6}


def test_the_files_are_a_query_set_and_a_manifest(tmp_path):
    bench = make_benchmark(24, 12, seed=1)
    queries = parse_queries(write_benchmark(tmp_path, bench))
    assert len(queries.queries) == 12
    assert Counter(q.kind for q in queries.queries) == {
        QueryKind.TEXT: 4, QueryKind.IMAGE: 4, QueryKind.COMPOSED: 4}
    rows = [json.loads(line) for line in (tmp_path / "items.jsonl").read_text().splitlines()]
    assert [row["parent_asin"] for row in rows] == [p.id for p in bench.products]
    for row, product in zip(rows, bench.products):
        assert row["title"] == product.title and row["store"] == product.brand
        assert [i["variant"] for i in row["images"]][:1] == ["MAIN"]
        assert len(row["images"]) == product.views
        for image in row["images"]:
            assert Image.open(tmp_path / image["large"]).size == (256, 256)
    assert set(queries.item_ids()) <= {p.id for p in bench.products}
