"""Catalogue sources: a folder of images or an Amazon-Reviews-2023-style manifest (JSONL/Parquet).

Rows leaving here are plain dicts with the columns of ROW_COLUMNS; images are resolved and
read later (fetch.py). A row that cannot be used carries an error code instead of failing.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MANIFEST_SUFFIXES = {".jsonl", ".json", ".ndjson", ".parquet"}
ROW_COLUMNS = ("id", "title", "category", "price", "rating", "image", "error", "message")
# Which picture of an Amazon item to embed: large is plenty for a 224 px model.
IMAGE_KEYS = ("large", "hi_res", "thumb")


class SourceError(ValueError):
    """The source as a whole cannot be read (a fatal configuration error)."""


@dataclass(frozen=True)
class Source:
    kind: str  # "folder" | "jsonl" | "parquet"
    path: Path  # the folder or the manifest file
    root: Path  # image references resolve under this folder and may not leave it

    @classmethod
    def open(cls, location: str | Path) -> "Source":
        path = Path(location).expanduser().resolve()
        if path.is_dir():
            return cls("folder", path, path)
        if not path.is_file():
            raise SourceError(f"source {location} does not exist: give a folder of images or a "
                              "manifest (.jsonl or .parquet)")
        suffix = path.suffix.lower()
        if suffix not in MANIFEST_SUFFIXES:
            raise SourceError(f"source {location} is neither a folder nor a manifest "
                              f"({', '.join(sorted(MANIFEST_SUFFIXES))})")
        return cls("parquet" if suffix == ".parquet" else "jsonl", path, path.parent)


def folder_rows(source: Source) -> list[dict[str, Any]]:
    """One row per image file under the folder; ids are content hashes (set when read)."""
    rows = []
    for file in sorted(source.path.rglob("*")):
        if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("."):
            relative = file.relative_to(source.root)
            category = relative.parts[0] if len(relative.parts) > 1 else ""
            title = re.sub(r"[_\-]+", " ", file.stem).strip()
            rows.append(_row(None, title, category, None, None, str(relative)))
    return rows


def _row(item_id, title, category, price, rating, image, error="", message="") -> dict[str, Any]:
    return {"id": item_id or "", "title": title or "", "category": category or "",
            "price": _price(price), "rating": _price(rating), "image": image or "",
            "error": error, "message": message}


def _price(value: Any) -> float:
    """Amazon prices come as numbers, "$12.99", "None" or null; unknown is -1."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) and value >= 0 else -1.0
    if isinstance(value, str):
        match = re.search(r"\d+(?:[.,]\d+)?", value.replace(",", ""))
        return float(match.group(0)) if match else -1.0
    return -1.0


def pick_image(images: Any) -> str:
    """The reference to embed from an Amazon `images` list (MAIN variant first)."""
    if isinstance(images, str):
        return images
    if isinstance(images, dict):  # the 2023 dump also has a dict of lists
        images = [dict(zip(images, values)) for values in zip(*images.values())] if all(
            isinstance(v, list) for v in images.values()) else [images]
    if not isinstance(images, (list, tuple)) or not images:
        return ""
    entries = [e for e in images if isinstance(e, dict)]
    entries.sort(key=lambda e: 0 if str(e.get("variant", "")).upper() == "MAIN" else 1)
    for entry in entries:
        for key in IMAGE_KEYS:
            if entry.get(key):
                return str(entry[key])
    strings = [e for e in images if isinstance(e, str) and e]
    return strings[0] if strings else ""


def manifest_row(record: Any) -> dict[str, Any]:
    """An Amazon Reviews 2023 item-metadata record -> a row (or an error row)."""
    if not isinstance(record, dict):
        return _row(None, "", "", None, None, "", "bad_record", "manifest line is not an object")
    item_id = record.get("parent_asin") or record.get("asin") or record.get("id")
    if not item_id:
        return _row(None, record.get("title"), "", None, None, "", "bad_record",
                    "record has no parent_asin (or asin/id)")
    image = pick_image(record.get("images"))
    row = _row(str(item_id), record.get("title"), record.get("main_category") or record.get("category"),
               record.get("price"), record.get("average_rating"), image)
    if not image:
        row.update(error="no_image", message="record has no image reference")
    return row


def parse_jsonl_line(line: str) -> dict[str, Any] | None:
    """One manifest line -> a row; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
    except ValueError as exc:
        return _row(None, "", "", None, None, "", "bad_record", f"not JSON: {exc}")
    return manifest_row(record)
