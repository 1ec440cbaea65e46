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


class MilvusSink(Datasink):
    """A Ray Data Datasink that upserts into one catalogue version from every write task,
    counting the items it finishes on the `progress` actor (ingest/progress.py)."""

    def __init__(self, milvus: MilvusSettings, dim: int, version: str, write_batch_size: int,
                 progress=None):
        self.milvus, self.dim, self.version = milvus, dim, version
        self.write_batch_size, self.progress = write_batch_size, progress
        self.results: list[Written] = []

    def write(self, blocks, ctx) -> Written:
        store = CatalogueStore(self.milvus, self.dim, shared=False, version=self.version)
        total = Written()
        try:
            for block in blocks:
                batch = BlockAccessor.for_block(block).to_batch_format("numpy")
                total.add(write_rows(store, batch, self.write_batch_size))
                if self.progress is not None:
                    self.progress.add.remote(items_finished(batch))
        finally:
            store.close()
        return total

    def on_write_complete(self, write_result) -> None:
        self.results = list(write_result.write_returns)

    def get_name(self) -> str:
        return "Milvus"
