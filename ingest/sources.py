"""Catalogue sources: a folder of images or an Amazon-Reviews-2023-style manifest (JSONL/Parquet).

A source is a local path or a filesystem URI (s3://, gs://, abfs://, hdfs://, file://, through
pyarrow); its root is the folder image references resolve under.

Rows leaving here are plain dicts with the columns of ROW_COLUMNS, one per item; its pictures
(`images`, a JSON list, the main one first) are resolved and read later (stages.py). A row
that cannot be used carries an error code instead of failing.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pyarrow import fs

from pardus.deployments.catalogue.items import UNKNOWN, CatalogueItem, ItemInvalid, parse_number
from pardus.deployments.catalogue.references import first_line
from pardus.deployments.uris import is_uri

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
MANIFEST_SUFFIXES = {".jsonl", ".json", ".ndjson", ".parquet"}
ROW_COLUMNS = ("id", "title", "category", "brand", "price", "rating", "in_stock", "popularity",
               "added_at", "images", "error", "message")
# in_stock stays an object column: True, False, or None when the manifest does not say.
NUMBER_COLUMNS = {"price": "float64", "rating": "float64", "image_index": "int64",
                  "popularity": "float64", "added_at": "int64"}
# The shop-side dates a manifest may give for when an item was added (Amazon's metadata has
# "Date First Available" under details, e.g. "March 4, 2021").
NO_IMAGE = "no_image"
DATE_FORMATS = ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%B %d, %Y", "%b %d, %Y")


def to_batch(rows: list[dict], columns: tuple[str, ...]) -> dict:
    """Rows -> a numpy batch of these columns (numbers typed, the rest objects)."""
    batch = {}
    for column in columns:
        values = np.empty(len(rows), dtype=NUMBER_COLUMNS.get(column, object))
        values[:] = [row[column] for row in rows]
        batch[column] = values
    return batch


# Which picture of an Amazon item to embed: large is plenty for a 224 px model.
IMAGE_KEYS = ("large", "hi_res", "thumb")


class SourceError(ValueError):
    """The source as a whole cannot be read (a fatal configuration error)."""


def _with_path(uri: str, path: str) -> str:
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=path))


def folder_uri(uri: str) -> str:
    """A folder URI without its trailing slash (query, e.g. ?region=, kept)."""
    return _with_path(uri, urlsplit(uri).path.rstrip("/") or "/")


def parent_uri(uri: str) -> str:
    """The folder URI of a file URI: s3://bucket/cat/items.jsonl -> s3://bucket/cat."""
    return folder_uri(_with_path(uri, posixpath.dirname(urlsplit(uri).path.rstrip("/"))))


def _manifest_kind(location: str, name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise SourceError(f"source {location} is neither a folder nor a manifest "
                          f"({', '.join(sorted(MANIFEST_SUFFIXES))})")
    return "parquet" if suffix == ".parquet" else "jsonl"


def _missing(location: str) -> SourceError:
    return SourceError(f"source {location} does not exist: give a folder of images or a "
                       "manifest (.jsonl or .parquet)")


def open_filesystem(uri: str):
    """(pyarrow filesystem, path inside it) of a URI; SourceError naming the URI if unusable."""
    try:
        return fs.FileSystem.from_uri(uri)
    except Exception as exc:  # ArrowInvalid for an unknown scheme, OSError for a missing backend
        raise SourceError(f"cannot open source {uri}: {first_line(exc)}") from None


@dataclass(frozen=True)
class Source:
    kind: str  # "folder" | "jsonl" | "parquet"
    location: str  # the folder or the manifest file: a local path or a filesystem URI
    root: str  # image references resolve under this folder (path or URI) and may not leave it

    @property
    def remote(self) -> bool:
        """Read through a pyarrow filesystem (file:// included), not as a local path."""
        return is_uri(self.location)

    @classmethod
    def open(cls, location: str | Path) -> "Source":
        if isinstance(location, str) and is_uri(location):
            return cls._open_uri(location)
        path = Path(location).expanduser().resolve()
        if path.is_dir():
            return cls("folder", str(path), str(path))
        if not path.is_file():
            raise _missing(str(location))
        return cls(_manifest_kind(str(location), path.name), str(path), str(path.parent))

    @classmethod
    def _open_uri(cls, uri: str) -> "Source":
        filesystem, path = open_filesystem(uri)
        try:
            info = filesystem.get_file_info(path)
        except Exception as exc:  # no credentials, access denied, unreachable endpoint
            raise SourceError(f"cannot open source {uri}: {first_line(exc)}") from None
        if info.type == fs.FileType.Directory:
            return cls("folder", folder_uri(uri), folder_uri(uri))
        if info.type != fs.FileType.File:
            raise _missing(uri)
        return cls(_manifest_kind(uri, path), uri, parent_uri(uri))


def _local_files(folder: Path) -> list[str]:
    return [file.relative_to(folder).as_posix() for file in folder.rglob("*") if file.is_file()]


def _remote_files(uri: str) -> list[str]:
    filesystem, base = open_filesystem(uri)
    prefix = base.rstrip("/") + "/"
    try:
        infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
    except Exception as exc:
        raise SourceError(f"cannot list source {uri}: {first_line(exc)}") from None
    return [info.path[len(prefix):] for info in infos
            if info.type == fs.FileType.File and info.path.startswith(prefix)]


def folder_rows(source: Source) -> list[dict[str, Any]]:
    """One row per image file under the folder; ids are content hashes (set when read)."""
    files = _remote_files(source.location) if source.remote else _local_files(Path(source.location))
    rows = []
    for relative in sorted(files, key=lambda name: name.split("/")):
        file = PurePosixPath(relative)
        if file.suffix.lower() in IMAGE_SUFFIXES and not file.name.startswith("."):
            category = file.parts[0] if len(file.parts) > 1 else ""
            title = re.sub(r"[_\-]+", " ", file.stem).strip()
            rows.append(_row(None, title, category, "", None, None, [relative]))
    return rows


def _row(item_id, title, category, brand, price, rating, images, error="", message="",
         in_stock=None, popularity=UNKNOWN, added_at=0) -> dict[str, Any]:
    return {"id": item_id or "", "title": title or "", "category": category or "",
            "brand": brand or "", "price": parse_number(price), "rating": parse_number(rating),
            "in_stock": in_stock, "popularity": popularity, "added_at": added_at,
            "images": json.dumps(list(images)), "error": error, "message": message}


def parse_in_stock(value: Any) -> bool | None:
    """A manifest's stock flag (true/false, 1/0, "in stock"/"out of stock"); None: not said."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip().lower() not in ("false", "0", "no", "out of stock", "")
    return bool(value)


def parse_popularity(record: dict) -> float:
    """`popularity`, else Amazon Reviews 2023's `rating_number` (how many rated it); UNKNOWN
    when the manifest gives neither."""
    return parse_number(record.get("popularity", record.get("rating_number")))


def parse_added_at(record: dict) -> int:
    """When the shop added the item, as unix seconds: `added_at` (seconds or a date), else
    Amazon's details["Date First Available"]; 0 when unknown (ingest then uses its own time)."""
    value = record.get("added_at")
    if value is None and isinstance(record.get("details"), dict):
        value = record["details"].get("Date First Available")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value) if 0 <= value < 2**40 else 0
    if isinstance(value, str):
        for form in DATE_FORMATS:
            try:
                moment = datetime.strptime(value.strip(), form).replace(tzinfo=timezone.utc)
                return max(0, int(moment.timestamp()))
            except ValueError:
                continue
    return 0


def _error(item_id: Any, code: str, message: str, images: list[str] = (),
           **attributes: Any) -> dict[str, Any]:
    return _row(str(item_id or "")[:200], "", "", "", attributes.pop("price", None),
                attributes.pop("rating", None), [str(i)[:200] for i in images[:1]], code,
                message, **attributes)


def _attributes(record: dict) -> dict[str, Any]:
    """What `ingest --attributes-only` reads of a record (a row without pictures has them)."""
    return {"price": record.get("price"), "rating": record.get("average_rating"),
            "in_stock": parse_in_stock(record.get("in_stock")),
            "popularity": parse_popularity(record), "added_at": parse_added_at(record)}


def pick_images(images: Any, limit: int) -> list[str]:
    """The picture references of an Amazon `images` list, the MAIN variant first, at most
    `limit` (each entry's `large` picture, else `hi_res`, else `thumb`)."""
    if isinstance(images, str):
        images = [images]
    if isinstance(images, dict):  # the 2023 dump also has a dict of lists
        images = [dict(zip(images, values)) for values in zip(*images.values())] if all(
            isinstance(v, list) for v in images.values()) else [images]
    if not isinstance(images, (list, tuple)):
        return []
    entries = [e for e in images if isinstance(e, (dict, str))]
    entries.sort(key=lambda e: 0 if isinstance(e, dict) and str(
        e.get("variant", "")).upper() == "MAIN" else 1)
    found: list[str] = []
    for entry in entries:
        reference = entry if isinstance(entry, str) else next(
            (str(entry[key]) for key in IMAGE_KEYS if entry.get(key)), "")
        if reference and reference not in found:
            found.append(reference)
    return found[:limit]


def manifest_row(record: Any, max_images: int) -> dict[str, Any]:
    """An Amazon Reviews 2023 item-metadata record -> a row (or an error row)."""
    if not isinstance(record, dict):
        return _error(None, "bad_record", "manifest line is not an object")
    item_id = record.get("parent_asin") or record.get("asin") or record.get("id")
    if not item_id:
        return _error(None, "bad_record", "record has no parent_asin (or asin/id)")
    images = pick_images(record.get("images"), max_images)
    if not images:  # its attributes still count for an attributes-only run
        return _error(item_id, NO_IMAGE, "record has no image reference",
                      **_attributes(record))
    try:  # the catalogue's rules (id pattern, byte limits) hold from the first stage on
        item = CatalogueItem.from_source(
            id=str(item_id), title=str(record.get("title") or ""),
            category=str(record.get("main_category") or record.get("category") or ""),
            brand=str(record.get("store") or record.get("brand") or ""),
            price=record.get("price"), rating=record.get("average_rating"), images=images)
    except ItemInvalid as exc:
        return _error(item_id, exc.code, exc.message, images)
    attributes = {**_attributes(record), "price": item.price, "rating": item.rating}
    return _row(item.id, item.title, item.category, item.brand, images=item.images,
                **attributes)


def parse_jsonl_line(line: str, max_images: int) -> dict[str, Any] | None:
    """One manifest line -> a row; None for a blank line."""
    line = line.strip()
    if not line:
        return None
    try:
        record = json.loads(line)
    except (ValueError, RecursionError) as exc:  # deeply nested JSON too
        return _error(None, "bad_record", f"not JSON: {str(exc)[:200]}")
    return manifest_row(record, max_images)
