"""Ray Data stages of the ingest: read and decode an item's pictures, embed them.

Each stage builds its heavy objects (Milvus client, model) in its own worker. An item row
comes in; a row per usable picture goes out (its index among the item's pictures, the main
one first). Rows keep their status in the `error` column all the way to the writer, which
upserts the good ones and reports the others: one bad picture never fails an item, one bad
item never fails a batch.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pardus.deployments.catalogue.references import read_image_bytes
from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.embedder.images import ImageError, ImageLimits, preprocess
from pardus.deployments.settings import EmbedderSettings, IngestSettings, MilvusSettings
from pardus.ingest.sources import to_batch

ALREADY = "already_indexed"
PICTURE_COLUMNS = ("id", "title", "category", "brand", "price", "rating", "in_stock",
                   "popularity", "added_at", "images", "image", "image_index", "scope", "error",
                   "message")


def content_id(data: bytes) -> str:
    """A stable item id for a bare image: its content hash."""
    return "sha256-" + hashlib.sha256(data).hexdigest()[:40]


class FetchDecode:
    """Read each item's pictures, name bare images by content, drop items already indexed
    whole, decode; one output row per picture (and one per item or picture that failed)."""

    def __init__(self, root: str, image_size: int, embedder: EmbedderSettings,
                 ingest: IngestSettings, milvus: MilvusSettings | None, version: str):
        self.root = root  # a local folder or a folder URI (read_image_bytes tells them apart)
        self.size = image_size
        self.limits = ImageLimits.of(embedder)
        self.ingest = ingest
        self.store = None
        if milvus is not None:  # skip items already whole (resume); None = re-embed everything

            self.store = CatalogueStore(milvus, shared=False, version=version)
        self.pool = ThreadPoolExecutor(max(1, embedder.decode_workers))

    def _read(self, reference: str) -> bytes | ImageError:
        try:
            return read_image_bytes(reference, self.root, self.limits.max_bytes,
                                    self.ingest.allow_http, self.ingest.http_timeout_s,
                                    self.ingest.allow_buckets)
        except ImageError as exc:
            return exc

    def _decode(self, data: bytes) -> np.ndarray | ImageError:
        try:
            return preprocess(data, self.size, self.limits)
        except ImageError as exc:
            return exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [{column: batch[column][i] for column in batch} for i in range(len(batch["id"]))]
        last = {(row["id"] or f"#{i}"): i for i, row in enumerate(rows)}  # an id's last row wins
        out, pixels = [], []
        for i, row in enumerate(rows):
            if last[row["id"] or f"#{i}"] != i:
                out.append({**row, "image": "", "image_index": -1, "scope": "item",
                            "error": "duplicate_id",
                            "message": f"id {row['id']!r} comes again later: that row is used"})
        items = [rows[i] for i in sorted(last.values())]
        good = [row for row in items if not row["error"]]
        refs = [(row, ref) for row in good for ref in json.loads(row["images"])]
        read = []  # (row, reference, bytes) of each picture read
        for (row, ref), result in zip(refs, self.pool.map(self._read, [r for _, r in refs])):
            if isinstance(result, ImageError):
                out.append(self._failed_picture(row, ref, result))
                continue
            if not row["id"]:  # a bare picture (folder ingest) is named by its content
                row["id"] = content_id(result)
            read.append((row, ref, result))
        # items already indexed whole are neither decoded nor embedded again (resume)
        known = self.store.complete_ids([row["id"] for row in good]) if self.store else set()
        read = [(row, ref, data) for row, ref, data in read if row["id"] not in known]
        pictures: dict[int, list] = {}
        for (row, ref, _), crop in zip(read, self.pool.map(self._decode, [d for *_, d in read])):
            if isinstance(crop, ImageError):
                out.append(self._failed_picture(row, ref, crop))
            else:
                pictures.setdefault(id(row), []).append((ref, crop))
        for row in items:
            found = pictures.get(id(row), [])
            failed = {"image": "", "image_index": -1, "scope": "item"}
            if row["error"]:
                out.append({**row, **failed})
            elif row["id"] in known:
                out.append({**row, **failed, "error": ALREADY})
                continue
            elif not found:
                out.append({**row, **failed, "error": "no_usable_image",
                            "message": "none of the item's pictures could be used"})
            images = json.dumps([ref for ref, _ in found])  # the usable ones, in order
            for index, (ref, crop) in enumerate(found):
                out.append({**row, "images": images, "image": ref, "image_index": index,
                            "scope": "picture", "error": "", "message": ""})
                pixels.append((len(out) - 1, crop))
        return _columns(out, pixels, self.size)

    @staticmethod
    def _failed_picture(row: dict, ref: str, error: ImageError) -> dict:
        return {**row, "image": ref, "image_index": -1, "scope": "picture",
                "error": error.reason, "message": error.message}


def _columns(rows: list[dict], pixels: list[tuple[int, np.ndarray]], size: int) -> dict:
    """Rows -> a numpy batch; pictures' crops in a (n, 3, size, size) column."""
    batch = to_batch(rows, PICTURE_COLUMNS)
    crops = np.zeros((len(rows), 3, size, size), dtype=np.uint8)
    for i, crop in pixels:
        crops[i] = crop
    batch["pixels"] = crops
    return batch


class Embed:
    """Each good picture's two vectors: the image alone, and the image with its item's title
    (one vision pass for both; one model per actor)."""

    def __init__(self, embedder: EmbedderSettings):
        # In the embed actors only: the read and decode workers never load torch.
        from pardus.deployments.embedder.encoder import Embedder

        self.embedder = Embedder(embedder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = batch.pop("pixels")
        n = len(batch["id"])
        good = [i for i in range(n) if not batch["error"][i]]
        image = np.zeros((n, self.embedder.dim), dtype=np.float32)
        pair = np.zeros_like(image)
        if good:
            image[good], pair[good] = self.embedder.encode_pictures(
                [pixels[i] for i in good], [str(batch["title"][i]) for i in good])
        return {**batch, "image_vector": image, "pair_vector": pair}
