"""`pardus ingest`: source -> read/decode -> embed (actor pool) -> Milvus, with a skip report."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import ray
import ray.data
from ray.data import ActorPoolStrategy, DataContext

from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.catalogue.versions import label_of
from pardus.deployments.embedder.checkpoint import embedding_dim, resolve
from pardus.deployments.settings import Settings
from pardus.ingest.progress import Report, Watch, count_items, counter
from pardus.ingest.sources import (
    ROW_COLUMNS,
    Source,
    SourceError,
    folder_rows,
    manifest_row,
    open_filesystem,
    parse_jsonl_line,
    to_batch,
)
from pardus.ingest.stages import Embed, FetchDecode
from pardus.ingest.writer import MilvusSink, Written

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    source: str
    collection: str  # the version written (`products__v1`)
    uri: str
    live: bool = False  # the version the catalogue's name points at
    seen: int = 0  # items read
    indexed: int = 0  # distinct items written by this run
    rows: int = 0  # their picture rows
    duplicates: int = 0  # picture rows another row of this run also wrote (same id)
    already: int = 0  # items whole in the collection before (skipped)
    skipped: Counter = field(default_factory=Counter)  # items not indexed, by reason
    skipped_pictures: Counter = field(default_factory=Counter)  # pictures left out, by reason
    seconds: float = 0.0
    count_after: int = 0  # items in the version afterwards
    rows_after: int = 0
    report: str = ""

    @property
    def items_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> bool:
        """Nothing could be indexed and nothing was there already."""
        return self.indexed == 0 and self.already == 0


def _parse_lines(batch: dict, max_images: int) -> dict:
    rows = [parse_jsonl_line(_utf8(line), max_images) for line in batch["text"]]
    return to_batch([row for row in rows if row is not None], ROW_COLUMNS)


def _utf8(line: str) -> str:
    """A manifest line read as Latin-1 (every byte one character, so Ray's reader never
    fails on a bad byte) back to its UTF-8 text; bytes that are not UTF-8 make it a bad row."""
    try:
        return line.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return "<not UTF-8>"


def _normalize_records(batch, max_images: int) -> dict:
    return to_batch([manifest_row(record, max_images) for record in batch.to_dict("records")],
                    ROW_COLUMNS)


def _ray_paths(source: Source) -> dict:
    """Ray Data reader arguments: a URI source is read through the pyarrow filesystem that
    opened it (its ?region= and other options kept), a local one by path."""
    if not source.remote:
        return {"paths": source.location}
    filesystem, path = open_filesystem(source.location)
    return {"paths": path, "filesystem": filesystem}


def read_source(source: Source, read_cpus: float, max_images: int):
    """The source as a Ray Dataset of item rows (ingest.sources.ROW_COLUMNS), and how many
    items it holds when that is cheap to know."""
    if source.kind == "folder":
        rows = folder_rows(source)
        if not rows:
            raise SourceError(f"no images under {source.location}")
        return ray.data.from_items(rows), len(rows)
    total = count_items(source)
    if source.kind == "jsonl":
        lines = ray.data.read_text(**_ray_paths(source), encoding="latin-1", num_cpus=read_cpus)
        return lines.map_batches(partial(_parse_lines, max_images=max_images),
                                 batch_format="numpy", num_cpus=read_cpus), total
    records = ray.data.read_parquet(**_ray_paths(source), num_cpus=read_cpus)
    return records.map_batches(partial(_normalize_records, max_images=max_images),
                               batch_format="pandas", num_cpus=read_cpus), total


def ensure_ray(local_cpus: int | None = None) -> None:
    """Ray for this process: the cluster RAY_ADDRESS names (a RayJob's), else a new local
    instance with `local_cpus` logical CPUs (None: the machine's) - never a stray cluster
    another process left on this machine, which a bare ray.init() would join."""
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or "local"
        local = address == "local"
        ray.init(address=address, num_cpus=local_cpus if local else None,
                 include_dashboard=False if local else None, log_to_driver=False,
                 configure_logging=False)


def _embedded_rows(source: Source, settings: Settings, image_size: int, milvus, version: str):
    """read -> fetch/decode (actors) -> embed (actor pool): a lazy Ray Dataset of pictures, and
    the source's item count (None: unknown)."""
    opts = settings.ingest
    ds, total = read_source(source, opts.fetch_num_cpus, opts.max_images)
    ds = ds.map_batches(
        FetchDecode, batch_format="numpy", batch_size=opts.batch_size,
        fn_constructor_kwargs=dict(root=source.root, image_size=image_size,
                                   embedder=settings.embedder, ingest=opts, milvus=milvus,
                                   version=version),
        compute=ActorPoolStrategy(size=opts.fetch_actors), num_cpus=opts.fetch_num_cpus,
    )
    return ds.map_batches(
        Embed, batch_format="numpy", batch_size=opts.batch_size,
        fn_constructor_kwargs=dict(embedder=settings.embedder),
        compute=ActorPoolStrategy(size=opts.embed_actors), num_cpus=opts.embed_num_cpus,
        num_gpus=opts.embed_num_gpus,
    ), total


def _tally(summary: IngestSummary, results: list) -> list[dict]:
    """Fold the write tasks' results into the summary; returns the report rows."""
    total = Written()
    for result in results:
        total.add(result)
    items = [row for row in total.skipped if row["scope"] == "item"]
    summary.indexed, summary.rows = len(set(total.items)), total.rows
    summary.already = total.already
    summary.duplicates = len(total.items) - total.rows  # rows the writer merged (same id twice)
    summary.skipped = Counter(row["reason"] for row in items)
    summary.skipped_pictures = Counter(r["reason"] for r in total.skipped if r["scope"] != "item")
    summary.seen = summary.indexed + summary.already + len(items)
    return total.skipped


def run_ingest(location: str, settings: Settings, reembed: bool = False,
               version: str | None = None, progress: Report | None = None) -> IngestSummary:
    """Index a folder or manifest into a version of the catalogue (the live one unless
    `version` names another; the first version becomes live); idempotent and resumable.
    progress(items done, items in the source or None) is called as the run goes."""
    source = Source.open(location)
    files = resolve(settings.embedder)  # fail early (and clearly) on missing weights
    dim = embedding_dim(settings.embedder)
    store = CatalogueStore(settings.milvus, dim, shared=True, version=version)
    target = store.ensure_collection()
    store.version = target  # pinned to the version: a promote mid-run moves nothing
    label = label_of(settings.milvus.collection, target)
    milvus = settings.milvus.model_copy(update={"uri": store.uri})
    summary = IngestSummary(source.location, target, store.uri, live=target == store.live())
    ensure_ray()

    DataContext.get_current().enable_progress_bars = False  # ours, from the write tasks
    start = time.perf_counter()
    ds, total = _embedded_rows(source, settings, files.vision.image_size,
                               None if reembed else milvus, label)
    done = counter() if progress else None
    sink = MilvusSink(milvus, dim, label, settings.ingest.write_batch_size, done)
    with Watch(done, total, progress) if progress else nullcontext():
        ds.write_datasink(sink, ray_remote_args={"num_cpus": settings.ingest.write_num_cpus})
    summary.seconds = time.perf_counter() - start

    report_rows = _tally(summary, sink.results)
    if summary.rows:
        store.flush()  # seal the new rows so searches use the index (before anything can fail)
    summary.count_after, summary.rows_after = store.count(), store.count_rows()
    store.close()
    summary.report = write_report(Path(settings.ingest.report), report_rows)
    return summary


def write_report(path: Path, rows: list[dict]) -> str:
    """What was left out, one JSON object a line (id, image, reason, message, scope: an item,
    or one of its pictures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return str(path)
