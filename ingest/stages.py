"""Ray Data stages of the ingest: read+decode, embed, write to Milvus.

Each stage builds its heavy objects (Milvus client, model) in its own worker. Rows keep their
status in the `error` column all the way to the writer, which upserts the good ones and
returns the others for the skip report: one bad image never fails a batch.
"""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from deployments.catalogue.items import CatalogueItem, ItemInvalid
from deployments.embedder.images import ImageError, ImageLimits, preprocess
from deployments.settings import EmbedderSettings, IngestSettings, MilvusSettings
from deployments.catalogue.references import read_image_bytes

ALREADY = "already_indexed"


def content_id(data: bytes) -> str:
    """A stable item id for a bare image: its content hash."""
    return "sha256-" + hashlib.sha256(data).hexdigest()[:40]


class FetchDecode:
    """Read image bytes, name bare images by content, drop ids already indexed, decode."""

    def __init__(self, root: str, image_size: int, embedder: EmbedderSettings,
                 ingest: IngestSettings, milvus: MilvusSettings | None):
        self.root = root  # a local folder or a folder URI (read_image_bytes tells them apart)
        self.size = image_size
        self.limits = ImageLimits.of(embedder)
        self.ingest = ingest
        self.store = None
        if milvus is not None:  # skip known ids (resume); None = re-embed everything
            from deployments.catalogue.store import CatalogueStore

            self.store = CatalogueStore(milvus, shared=False)
        self.pool = ThreadPoolExecutor(max(1, embedder.decode_workers))

    def _read(self, reference: str) -> bytes | ImageError:
        try:
            return read_image_bytes(reference, self.root, self.limits.max_bytes,
                                    self.ingest.allow_http, self.ingest.http_timeout_s)
        except ImageError as exc:
            return exc

    def _decode(self, data: bytes) -> np.ndarray | ImageError:
        try:
            return preprocess(data, self.size, self.limits)
        except ImageError as exc:
            return exc

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["id"])
        ids, errors, messages = batch["id"].copy(), batch["error"].copy(), batch["message"].copy()
        pending = [i for i in range(n) if not errors[i]]
        blobs = dict(zip(pending, self.pool.map(self._read, [batch["image"][i] for i in pending])))
        for i, blob in blobs.items():
            if isinstance(blob, ImageError):
                errors[i], messages[i] = blob.code, blob.message
            elif not ids[i]:
                ids[i] = content_id(blob)
        if self.store is not None:
            candidates = [ids[i] for i in range(n) if not errors[i]]
            known = self.store.existing_ids(candidates) if candidates else set()
            for i in range(n):
                if not errors[i] and ids[i] in known:
                    errors[i] = ALREADY
        todo = [i for i in range(n) if not errors[i]]
        pixels = np.zeros((n, 3, self.size, self.size), dtype=np.uint8)
        for i, crop in zip(todo, self.pool.map(self._decode, [blobs[i] for i in todo])):
            if isinstance(crop, ImageError):
                errors[i], messages[i] = crop.code, crop.message
            else:
                pixels[i] = crop
        return {**batch, "id": ids, "error": errors, "message": messages, "pixels": pixels}


class Embed:
    """Embed the decoded crops of good rows (one model per actor)."""

    def __init__(self, embedder: EmbedderSettings):
        from deployments.embedder.encoder import Embedder

        self.embedder = Embedder(embedder)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        pixels = batch.pop("pixels")
        n = len(batch["id"])
        good = [i for i in range(n) if not batch["error"][i]]
        vectors = np.zeros((n, self.embedder.dim), dtype=np.float32)
        if good:
            result = self.embedder.encode_decoded([pixels[i] for i in good], [""] * len(good))
            vectors[good] = result.vectors
        return {**batch, "vector": vectors}


def write_rows(store, batch: dict[str, np.ndarray], write_batch_size: int) -> dict[str, Any]:
    """Upsert a batch's good rows; return their ids, the already-known count, the skipped rows."""
    now = int(time.time())
    skipped, already, written = [], 0, []
    items, vectors = [], []

    def skip(i: int, reason: str, message: str) -> None:
        skipped.append({"id": str(batch["id"][i]), "image": str(batch["image"][i]),
                        "reason": reason, "message": message})

    for i, item_id in enumerate(batch["id"]):
        error = batch["error"][i]
        if error == ALREADY:
            already += 1
            continue
        if error:
            skip(i, str(error), str(batch["message"][i]))
            continue
        try:
            items.append(CatalogueItem.from_source(
                id=str(item_id), title=str(batch["title"][i]), category=str(batch["category"][i]),
                price=float(batch["price"][i]), rating=float(batch["rating"][i]),
                image=str(batch["image"][i]), ingested_at=now))
        except ItemInvalid as exc:
            skip(i, exc.code, exc.message)
            continue
        vectors.append(batch["vector"][i])
    for start in range(0, len(items), write_batch_size):
        chunk = items[start : start + write_batch_size]
        store.upsert(chunk, np.stack(vectors[start : start + write_batch_size]))
        written += [item.id for item in chunk]
    return {"written": written, "already": already, "skipped": skipped}


def make_sink(milvus: MilvusSettings, dim: int, write_batch_size: int):
    """A Ray Data Datasink that upserts into the catalogue collection from every write task."""
    from ray.data import Datasink

    class MilvusSink(Datasink):
        def __init__(self):
            self.results: list[dict[str, Any]] = []

        def write(self, blocks, ctx) -> dict[str, Any]:
            from ray.data.block import BlockAccessor

            from deployments.catalogue.store import CatalogueStore

            store = CatalogueStore(milvus, dim, shared=False)
            total = {"written": [], "already": 0, "skipped": []}
            try:
                for block in blocks:
                    batch = BlockAccessor.for_block(block).to_batch_format("numpy")
                    part = write_rows(store, batch, write_batch_size)
                    total["written"] += part["written"]
                    total["already"] += part["already"]
                    total["skipped"] += part["skipped"]
            finally:
                store.close()
            return total

        def on_write_complete(self, write_result) -> None:
            self.results = list(write_result.write_returns)

        def get_name(self) -> str:
            return "Milvus"

    return MilvusSink()
