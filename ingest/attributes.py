"""`pardus ingest SOURCE --attributes-only`: a manifest's attributes (price, rating, stock,
popularity, when added) onto the items already indexed, nothing fetched or embedded.

The manifest is read as a normal ingest reads it (Ray Data: JSONL or Parquet, local or object
storage); parallel write tasks rewrite every picture row of each item whole (its vectors
read back with it), so none is lost or doubled. Only what a record says changes: a price the
manifest does not give keeps the stored one.
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ray.data import DataContext

from pardus.deployments.catalogue.items import UNKNOWN
from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.catalogue.versions import label_of
from pardus.deployments.settings import Settings
from pardus.ingest.pipeline import ensure_ray, read_source, write_report
from pardus.ingest.progress import Report, Watch, counter
from pardus.ingest.sources import NO_IMAGE, Source, SourceError
from pardus.ingest.writer import StoreSink, stock

UPDATE_CHUNK = 256  # items per store call


def changes_of(batch: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """The attributes row i gives (unknown values left out)."""
    out: dict[str, Any] = {}
    for name in ("price", "rating", "popularity"):
        value = float(batch[name][i])
        if value != UNKNOWN:
            out[name] = value
    said = stock(batch["in_stock"][i])
    if said is not None:
        out["in_stock"] = said
    if int(batch["added_at"][i]):
        out["added_at"] = int(batch["added_at"][i])
    return out


@dataclass
class Updated:
    """What one write task did."""

    updated: int = 0
    missing: list[str] = field(default_factory=list)  # ids not in the catalogue
    skipped: list[dict[str, Any]] = field(default_factory=list)  # bad rows, with why

    def add(self, other: "Updated") -> None:
        self.updated += other.updated
        self.missing += other.missing
        self.skipped += other.skipped


def update_rows(store: CatalogueStore, batch: dict[str, np.ndarray]) -> Updated:
    done, changes = Updated(), {}
    for i, item_id in enumerate(batch["id"]):
        if batch["error"][i] and batch["error"][i] != NO_IMAGE:  # pictures are not needed
            done.skipped.append({"id": str(item_id), "reason": str(batch["error"][i]),
                                 "message": str(batch["message"][i])})
        elif changes_of(batch, i):
            changes[str(item_id)] = changes_of(batch, i)
    ids = list(changes)
    for start in range(0, len(ids), UPDATE_CHUNK):
        chunk = {item_id: changes[item_id] for item_id in ids[start : start + UPDATE_CHUNK]}
        found = {item.id for item in store.update_attributes(chunk)}
        done.updated += len(found)
        done.missing += [item_id for item_id in chunk if item_id not in found]
    return done


class AttributesSink(StoreSink):
    """Updates the attributes of the items a manifest names."""

    name = "MilvusAttributes"

    def empty(self) -> Updated:
        return Updated()

    def write_batch(self, store: CatalogueStore, batch: dict[str, np.ndarray]) -> Updated:
        return update_rows(store, batch)

    def finished(self, batch: dict[str, np.ndarray]) -> int:
        return len(batch["id"])


@dataclass
class AttributesSummary:
    source: str
    version: str
    updated: int = 0
    missing: int = 0  # items the catalogue does not hold (ingest them first)
    skipped: Counter = field(default_factory=Counter)  # bad rows, by reason
    seconds: float = 0.0
    report: str = ""


def run_attributes(location: str, settings: Settings, version: str | None = None,
                   progress: Report | None = None) -> AttributesSummary:
    """Update the attributes of a version (the live one unless named) from a manifest."""
    source = Source.open(location)
    if source.kind == "folder":
        raise SourceError(f"{location} is a folder of images: attributes come from a manifest "
                          "(.jsonl or .parquet)")
    store = CatalogueStore(settings.milvus, shared=True, version=version)
    try:
        target = store.target()
        uri = store.uri
    finally:
        store.close()
    if target is None:
        raise SourceError(f"{settings.milvus.collection!r} has no live version: ingest the "
                          "catalogue first")
    label = label_of(settings.milvus.collection, target)  # pinned: a promote moves nothing
    milvus = settings.milvus.model_copy(update={"uri": uri})
    ensure_ray()
    DataContext.get_current().enable_progress_bars = False  # ours, from the write tasks
    start = time.perf_counter()
    dataset, total = read_source(source, settings.ingest.fetch_num_cpus,
                                 settings.ingest.max_images)
    done = counter() if progress else None
    sink = AttributesSink(milvus, label, done)
    with Watch(done, total, progress) if progress else nullcontext():
        dataset.write_datasink(sink, ray_remote_args={"num_cpus": settings.ingest.write_num_cpus})
    tally = Updated()
    for result in sink.results:
        tally.add(result)
    rows = tally.skipped + [{"id": item_id, "reason": "not_indexed",
                             "message": "not in the catalogue: ingest it first"}
                            for item_id in tally.missing]
    return AttributesSummary(
        source=source.location, version=target, updated=tally.updated,
        missing=len(tally.missing), skipped=Counter(row["reason"] for row in tally.skipped),
        seconds=time.perf_counter() - start,
        report=write_report(Path(settings.ingest.report), rows))
