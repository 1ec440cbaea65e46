"""The last ingest stage: picture rows into Milvus from every write task, the rest reported."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ray.data import Datasink
from ray.data.block import BlockAccessor

from pardus.deployments.catalogue.items import CatalogueItem, ItemInvalid
from pardus.deployments.catalogue.store import CatalogueStore, Picture
from pardus.deployments.settings import MilvusSettings
from pardus.ingest.progress import items_finished
from pardus.ingest.stages import ALREADY


@dataclass
class Written:
    """What one write task did."""

    items: list[str] = field(default_factory=list)  # ids written (once per picture row)
    rows: int = 0
    already: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)  # report rows

    def add(self, other: "Written") -> None:
        self.items += other.items
        self.rows += other.rows
        self.already += other.already
        self.skipped += other.skipped


def stock(value: Any) -> bool | None:
    """A row's stock flag through Ray's blocks (Arrow may hand back None or NaN for 'not
    said', numpy booleans for the rest)."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return None
    return bool(value)


def _item(batch: dict[str, np.ndarray], i: int, now: int) -> CatalogueItem:
    return CatalogueItem.from_source(
        id=str(batch["id"][i]), title=str(batch["title"][i]),
        category=str(batch["category"][i]), brand=str(batch["brand"][i]),
        price=float(batch["price"][i]), rating=float(batch["rating"][i]),
        images=tuple(json.loads(batch["images"][i])), ingested_at=now,
        in_stock=stock(batch["in_stock"][i]) is not False,  # not said: in stock
        popularity=max(float(batch["popularity"][i]), 0.0),
        added_at=int(batch["added_at"][i]) or now)


def write_rows(store, batch: dict[str, np.ndarray], write_batch_size: int) -> Written:
    """Upsert a batch's good picture rows; count items already whole; report the rest."""
    now, done, pictures = int(time.time()), Written(), []
    items: dict[str, CatalogueItem | ItemInvalid] = {}

    def report(i: int, **fields) -> None:
        done.skipped.append({"id": str(batch["id"][i]), "image": str(batch["image"][i]),
                             "reason": str(batch["error"][i]),
                             "message": str(batch["message"][i]),
                             "scope": str(batch["scope"][i]), **fields})

    for i, item_id in enumerate(batch["id"]):
        error = str(batch["error"][i])
        if error == ALREADY:
            done.already += 1
        elif error:
            report(i)
        elif item_id not in items:
            try:
                items[item_id] = _item(batch, i, now)
            except ItemInvalid as exc:  # reported once, with its first picture
                items[item_id] = exc
                report(i, reason=exc.code, message=exc.message, scope="item")
        if not error and isinstance(items[item_id], CatalogueItem):
            pictures.append(Picture(items[item_id], int(batch["image_index"][i]),
                                    batch["image_vector"][i], batch["pair_vector"][i]))
    for start in range(0, len(pictures), write_batch_size):
        chunk = pictures[start : start + write_batch_size]
        done.rows += store.upsert(chunk)
        done.items += [p.item.id for p in chunk]
    return done


class StoreSink(Datasink):
    """A Ray Data Datasink that writes into one catalogue version from every write task (a
    store of its own in each), counting the items it finishes on the `progress` actor
    (ingest/progress.py). A kind of sink says what a batch does to the store, the zero of
    its totals, and how many items a batch finishes."""

    name = "Milvus"

    def __init__(self, milvus: MilvusSettings, version: str | None, progress=None,
                 dim: int | None = None):
        self.milvus, self.version, self.progress, self.dim = milvus, version, progress, dim
        self.results: list = []

    def empty(self):
        raise NotImplementedError

    def write_batch(self, store: CatalogueStore, batch: dict[str, np.ndarray]):
        raise NotImplementedError

    def finished(self, batch: dict[str, np.ndarray]) -> int:
        raise NotImplementedError

    def write(self, blocks, ctx):
        store = CatalogueStore(self.milvus, self.dim, shared=False, version=self.version)
        total = self.empty()
        try:
            for block in blocks:
                batch = BlockAccessor.for_block(block).to_batch_format("numpy")
                total.add(self.write_batch(store, batch))
                if self.progress is not None:
                    self.progress.add.remote(self.finished(batch))
        finally:
            store.close()
        return total

    def on_write_complete(self, write_result) -> None:
        self.results = list(write_result.write_returns)

    def get_name(self) -> str:
        return self.name


class MilvusSink(StoreSink):
    """Upserts the picture rows of an ingest."""

    def __init__(self, milvus: MilvusSettings, dim: int, version: str, write_batch_size: int,
                 progress=None):
        super().__init__(milvus, version, progress, dim)
        self.write_batch_size = write_batch_size

    def empty(self) -> Written:
        return Written()

    def write_batch(self, store: CatalogueStore, batch: dict[str, np.ndarray]) -> Written:
        return write_rows(store, batch, self.write_batch_size)

    def finished(self, batch: dict[str, np.ndarray]) -> int:
        return items_finished(batch)
