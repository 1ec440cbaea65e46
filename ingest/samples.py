"""A small synthetic product catalogue (drawn with Pillow) for demos and tests."""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {
    "red": (200, 30, 40), "blue": (30, 70, 200), "green": (40, 160, 70),
    "black": (20, 20, 20), "yellow": (230, 200, 40), "pink": (235, 120, 170),
}
PATTERNS = ("plain", "striped", "dotted", "leopard")
SHAPES = {"phone case": "phone", "mug": "mug", "t-shirt": "shirt", "bag": "bag"}
CATEGORIES = {"phone case": "Cell Phones & Accessories", "mug": "Home & Kitchen",
              "t-shirt": "Clothing", "bag": "Clothing"}


BRANDS = ("Acme", "Lumen", "Pardalis", "Nordkap", "Vela")


@dataclass(frozen=True)
class SampleItem:
    item_id: str
    title: str
    category: str
    brand: str
    price: float
    rating: float
    images: tuple[str, ...]  # file names, relative to the catalogue folder, the main one first
    rating_number: int = 0  # how many rated it (Amazon's field; Pardus's popularity)
    in_stock: bool = True
    added_at: str = ""  # Amazon's "Date First Available", e.g. "March 4, 2021"


def _pattern(draw: ImageDraw.ImageDraw, box, pattern: str, color, rng: random.Random) -> None:
    x0, y0, x1, y1 = box
    if pattern == "striped":
        for y in range(y0, y1, 12):
            draw.rectangle((x0, y, x1, y + 5), fill=color)
    elif pattern == "dotted":
        for y in range(y0 + 6, y1, 16):
            for x in range(x0 + 6, x1, 16):
                draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=color)
    elif pattern == "leopard":
        for _ in range(40):
            x, y, r = rng.randint(x0, x1), rng.randint(y0, y1), rng.randint(4, 9)
            draw.ellipse((x - r, y - r, x + r, y + r), outline=(40, 25, 10), width=3)
            draw.ellipse((x - r + 3, y - r + 3, x + r - 3, y + r - 3), fill=(140, 90, 30))


def _stamp(draw: ImageDraw.ImageDraw, code: int, size: int) -> None:
    """A small 12-bit label in the bottom corner, so every catalogue picture is unique."""
    cell = max(2, size // 64)
    for bit in range(12):
        if code >> bit & 1:
            x = cell + bit * cell
            draw.rectangle((x, size - 2 * cell, x + cell - 1, size - cell), fill=(30, 30, 30))


def draw_product(kind: str, color: str, pattern: str, seed: int = 0, size: int = 256,
                 code: int | None = None) -> Image.Image:
    """A simple picture of a product: its silhouette, colour and surface pattern."""
    rng = random.Random(seed)
    base = COLORS[color]
    image = Image.new("RGB", (size, size), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    s = size
    shape = SHAPES[kind]
    if shape == "phone":
        box = (s * 3 // 10, s // 10, s * 7 // 10, s * 9 // 10)
        draw.rounded_rectangle(box, radius=s // 12, fill=base)
    elif shape == "mug":
        box = (s // 4, s // 4, s * 2 // 3, s * 4 // 5)
        draw.rectangle(box, fill=base)
        draw.ellipse((s * 3 // 5, s * 2 // 5, s * 4 // 5, s * 3 // 5), outline=base, width=s // 20)
    elif shape == "shirt":
        box = (s // 4, s // 4, s * 3 // 4, s * 9 // 10)
        draw.polygon([(s // 10, s // 3), (s // 4, s // 6), (s * 3 // 4, s // 6),
                      (s * 9 // 10, s // 3), (s * 3 // 4, s * 2 // 5)], fill=base)
        draw.rectangle(box, fill=base)
    else:
        box = (s // 5, s * 2 // 5, s * 4 // 5, s * 9 // 10)
        draw.arc((s // 3, s // 5, s * 2 // 3, s * 3 // 5), 180, 360, fill=base, width=s // 25)
        draw.rectangle(box, fill=base)
    if pattern != "plain":
        accent = tuple(min(255, c + 90) for c in base)
        _pattern(draw, box, pattern, accent, rng)
    if code is not None:
        _stamp(draw, code, size)
    return image


def product_view(picture: Image.Image, view: int) -> Image.Image:
    """Another picture of the same product: the main one (0), mirrored (1), turned (2)."""
    if view == 1:
        return picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if view == 2:
        return picture.rotate(90, fillcolor=(245, 245, 240))
    return picture


def write_sample_catalogue(folder: str | Path, count: int = 24, seed: int = 0) -> list[SampleItem]:
    """Draw `count` products (one to three pictures each) into folder/images and write
    folder/items.jsonl (Amazon Reviews 2023 style: MAIN picture first, a store, a model code in
    the title)."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for i in range(count):
        kind = list(SHAPES)[i % len(SHAPES)]
        color = rng.choice(list(COLORS))
        pattern = PATTERNS[(i // len(SHAPES)) % len(PATTERNS)]
        brand = BRANDS[i % len(BRANDS)]
        names = []
        picture = draw_product(kind, color, pattern, seed=seed * 1000 + i, code=i + 1)
        for view in range(1 + i % 3):
            name = f"images/item-{i:04d}-{view}.jpg"
            product_view(picture, view).save(folder / name, quality=90)
            names.append(name)
        model = f"{brand[:2].upper()}-{1000 + (i * 37) % 9000}"
        title = f"{color} {pattern} {kind} {model}".replace("plain ", "")
        added = datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(days=11 * i)
        items.append(SampleItem(  # signals from i, so the drawn prices stay as they were
            item_id=f"SAMPLE{i:05d}", title=title, category=CATEGORIES[kind], brand=brand,
            price=round(rng.uniform(5, 80), 2), rating=round(rng.uniform(2.5, 5.0), 1),
            images=tuple(names), rating_number=(i * 53) % 500, in_stock=i % 7 != 3,
            added_at=added.strftime("%B %d, %Y")))
    write_manifest(folder, items)
    return items


def write_manifest(folder: Path, items: Iterable[SampleItem]) -> None:
    """folder/items.jsonl in the Amazon Reviews 2023 layout (the MAIN picture first)."""
    with open(folder / "items.jsonl", "w") as out:
        for item in items:
            pictures = [{"large": name, "variant": "MAIN" if view == 0 else f"PT{view:02d}"}
                        for view, name in enumerate(item.images)]
            record = {
                "parent_asin": item.item_id, "title": item.title, "store": item.brand,
                "main_category": item.category, "price": item.price,
                "average_rating": item.rating, "rating_number": item.rating_number,
                "in_stock": item.in_stock, "images": pictures}
            if item.added_at:
                record["details"] = {"Date First Available": item.added_at}
            out.write(json.dumps(record) + "\n")
