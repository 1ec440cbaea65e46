"""The generated benchmark: a drawn catalogue whose right answers are known by construction.

Every product has a look (colour, pattern, shape), a brand-like word and a model number in a
structured title, and one to three pictures. The queries name what makes an answer right:
    text      "red striped mug" (the look: gain 2, same colour and shape: gain 1), or a brand
              and model number "Korvex KO-4821" (that product), which only words can match;
    image     a product's picture re-drawn, cropped or recompressed (it: 2, same look: 1);
    composed  product A's picture and one change ("the same in blue"): every product with
              A's look so changed is right.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from pardus.ingest.samples import (
    CATEGORIES,
    COLORS,
    PATTERNS,
    SHAPES,
    SampleItem,
    draw_product,
    product_view,
    write_manifest,
)

BRANDS = ("Korvex", "Almira", "Tessly", "Brondal", "Quenza", "Velmo", "Ostrik", "Zandor")
KINDS = tuple(SHAPES)
IMAGE_TAGS = ("redrawn", "cropped", "recompressed")
PICTURE_SIZE = 256


@dataclass(frozen=True)
class Product:
    id: str
    kind: str
    color: str
    pattern: str
    brand: str
    model: str  # the model number, e.g. KO-4821: unique, only lexical search can match it
    views: int  # pictures: the main one, mirrored, turned
    seed: int  # of its drawing
    code: int  # the stamp that makes its pictures unique

    @property
    def look(self) -> tuple[str, str, str]:
        return self.color, self.pattern, self.kind

    @property
    def title(self) -> str:
        return f"{self.brand} {self.color} {self.pattern} {self.kind} {self.model}"

    def picture(self, view: int = 0) -> Image.Image:
        drawn = draw_product(self.kind, self.color, self.pattern, seed=self.seed,
                             size=PICTURE_SIZE, code=self.code)
        return product_view(drawn, view)

    def picture_name(self, view: int) -> str:
        return f"images/{self.id}-{view}.jpg"


@dataclass(frozen=True)
class BenchmarkQuery:
    id: str
    tag: str
    grades: dict[str, float]
    text: str = ""
    picture: Image.Image | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Benchmark:
    seed: int
    products: tuple[Product, ...]
    queries: tuple[BenchmarkQuery, ...]

    def count(self, kind: str) -> int:
        """Queries of a kind: text, image or composed."""
        return sum(1 for q in self.queries if _kind(q) == kind)


def _kind(query: BenchmarkQuery) -> str:
    if query.picture is None:
        return "text"
    return "composed" if query.text else "image"


def product_id(index: int) -> str:
    return f"EVAL{index:05d}"


def draw_products(count: int, rng: random.Random) -> list[Product]:
    """`count` products with random looks (some shared), brands and unique model numbers."""
    products, models = [], set()
    for index in range(count):
        brand = rng.choice(BRANDS)
        model = f"{brand[:2].upper()}-{rng.randint(1000, 9999)}"
        while model in models:
            model = f"{brand[:2].upper()}-{rng.randint(1000, 9999)}"
        models.add(model)
        products.append(Product(
            id=product_id(index), kind=rng.choice(KINDS), color=rng.choice(list(COLORS)),
            pattern=rng.choice(PATTERNS), brand=brand, model=model, views=1 + rng.randrange(3),
            seed=rng.randrange(1 << 30), code=index + 1))
    return products


def _sample(products: list[Product], count: int, rng: random.Random) -> list[Product]:
    """`count` products, each once before any twice."""
    picked: list[Product] = []
    while len(picked) < count:
        picked += rng.sample(products, min(len(products), count - len(picked)))
    return picked


def text_queries(products: list[Product], count: int, rng: random.Random) -> list[BenchmarkQuery]:
    queries = []
    for n, p in enumerate(_sample(products, count, rng)):
        if n % 2 == 0:
            grades = {o.id: 2.0 if o.look == p.look else 1.0 for o in products
                      if (o.color, o.kind) == (p.color, p.kind)}
            queries.append(BenchmarkQuery("", "attributes", grades,
                                          text=f"{p.color} {p.pattern} {p.kind}"))
        else:
            queries.append(BenchmarkQuery("", "model-number", {p.id: 1.0},
                                          text=f"{p.brand} {p.model}"))
    return queries


def _jpeg(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def query_picture(p: Product, tag: str, rng: random.Random) -> Image.Image:
    """The product's picture as a shopper might bring it."""
    if tag == "redrawn":  # a new drawing: other spots, another size, no stamp
        return draw_product(p.kind, p.color, p.pattern, seed=rng.randrange(1 << 30), size=224)
    picture = p.picture(rng.randrange(p.views))
    if tag == "cropped":
        side = int(PICTURE_SIZE * rng.uniform(0.7, 0.85))
        x, y = rng.randrange(PICTURE_SIZE - side), rng.randrange(PICTURE_SIZE - side)
        return picture.crop((x, y, x + side, y + side)).resize((PICTURE_SIZE, PICTURE_SIZE))
    return _jpeg(picture.resize((160, 160)), quality=15)


def image_queries(products: list[Product], count: int,
                  rng: random.Random) -> list[BenchmarkQuery]:
    queries = []
    for n, p in enumerate(_sample(products, count, rng)):
        tag = IMAGE_TAGS[n % len(IMAGE_TAGS)]
        grades = {o.id: 2.0 if o.id == p.id else 1.0 for o in products if o.look == p.look}
        queries.append(BenchmarkQuery("", tag, grades, picture=query_picture(p, tag, rng)))
    return queries


def change_text(a: Product, b: Product) -> tuple[str, str]:
    """(tag, text) of the one change from a's look to b's."""
    if a.color != b.color:
        return "change-color", f"the same in {b.color}"
    if a.pattern != b.pattern:
        return "change-pattern", f"the same but {b.pattern}"
    return "change-kind", f"this design as a {b.kind}"


def _round_robin(lists: list[list], count: int) -> list:
    """Up to `count` elements taken from each list in turn (the kinds of change balanced)."""
    taken: list = []
    for position in range(max((len(items) for items in lists), default=0)):
        taken += [items[position] for items in lists if position < len(items)]
    return taken[:count]


def composed_queries(products: list[Product], count: int,
                     rng: random.Random) -> list[BenchmarkQuery]:
    """A's picture plus one change; every product with the changed look is right. Fewer than
    `count` when the catalogue holds fewer such pairs."""
    by_look: dict[tuple, list[int]] = {}  # the products of each look, by position
    for index, product in enumerate(products):
        by_look.setdefault(product.look, []).append(index)
    by_change: dict[str, list[tuple[Product, Product]]] = {}
    for a in products:  # pairs in catalogue order, b among the looks one change away
        near = sorted(i for look, members in by_look.items()
                      if sum(x != y for x, y in zip(a.look, look)) == 1 for i in members)
        for b in (products[i] for i in near):
            by_change.setdefault(change_text(a, b)[0], []).append((a, b))
    for pairs in by_change.values():
        rng.shuffle(pairs)
    queries = []
    for a, b in _round_robin([by_change[tag] for tag in sorted(by_change)], count):
        tag, text = change_text(a, b)
        grades = {o.id: 1.0 for o in products if o.look == b.look}
        queries.append(BenchmarkQuery("", tag, grades, text=text,
                                      picture=_jpeg(a.picture(0), quality=60)))
    return queries


def make_benchmark(items: int, queries: int, seed: int = 0) -> Benchmark:
    """The catalogue and about `queries` queries, a third of each kind (text takes the rest)."""
    if items < 8:
        raise ValueError("a benchmark needs at least 8 items")
    rng = random.Random(seed)
    products = draw_products(items, rng)
    per_kind = max(1, queries // 3)
    made = (text_queries(products, queries - 2 * per_kind, rng)
            + image_queries(products, per_kind, rng) + composed_queries(products, per_kind, rng))
    numbered = tuple(BenchmarkQuery(f"q{n:04d}", q.tag, q.grades, q.text, q.picture)
                     for n, q in enumerate(made, start=1))
    return Benchmark(seed, tuple(products), numbered)


# -- files ------------------------------------------------------------------------------------
def write_catalogue(folder: Path, products: tuple[Product, ...], rng: random.Random) -> None:
    """items.jsonl (Amazon Reviews 2023 style, the MAIN picture first) and images/."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for p in products:
        drawn = p.picture()
        for view in range(p.views):
            product_view(drawn, view).save(folder / p.picture_name(view), quality=90)
        items.append(SampleItem(
            item_id=p.id, title=p.title, category=CATEGORIES[p.kind], brand=p.brand,
            price=round(rng.uniform(5, 80), 2), rating=round(rng.uniform(2.5, 5.0), 1),
            images=tuple(p.picture_name(view) for view in range(p.views))))
    write_manifest(folder, items)


def write_queries(folder: Path, queries: tuple[BenchmarkQuery, ...]) -> Path:
    """queries.jsonl (the format `pardus eval` reads) and the query pictures in queries/."""
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    path = folder / "queries.jsonl"
    with open(path, "w") as out:
        for q in queries:
            line: dict = {"id": q.id, "tag": q.tag}
            if q.text:
                line["text"] = q.text
            if q.picture is not None:
                line["image"] = f"queries/{q.id}.jpg"
                q.picture.save(folder / line["image"], quality=92)
            line["relevant"] = {item: int(g) if g.is_integer() else g
                                for item, g in q.grades.items()}
            out.write(json.dumps(line) + "\n")
    return path


def write_benchmark(folder: str | Path, benchmark: Benchmark) -> Path:
    """Draw the benchmark into folder; returns the query file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_catalogue(folder, benchmark.products, random.Random(benchmark.seed + 1))
    return write_queries(folder, benchmark.queries)
