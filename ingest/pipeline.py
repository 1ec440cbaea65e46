"""`pardus ingest`: source -> read/decode -> embed (actor pool) -> Milvus, with a skip report."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from deployments.settings import Settings
from ingest.sources import (Source, SourceError, folder_rows, manifest_row, open_filesystem,
                            parse_jsonl_line)

log = logging.getLogger(__name__)


@dataclass
class IngestSummary:
    source: str
    collection: str
    uri: str
    seen: int = 0
    indexed: int = 0  # distinct ids written by this run
    duplicates: int = 0  # rows whose id another row of this run also had (same image, same id)
    already: int = 0
    skipped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    count_after: int = 0
    report: str = ""

    @property
    def items_per_s(self) -> float:
        return self.indexed / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> bool:
        """Nothing could be indexed and nothing was there already."""
        return self.indexed == 0 and self.already == 0


def _rows_to_batch(rows: list[dict]) -> dict:
    import numpy as np

    from ingest.sources import ROW_COLUMNS

    out = {}
    for column in ROW_COLUMNS:
        values = [row[column] for row in rows]
        out[column] = np.array(values, dtype=np.float64 if column in ("price", "rating") else object)
    return out


def _parse_lines(batch: dict) -> dict:
    rows = [row for row in map(parse_jsonl_line, batch["text"]) if row is not None]
    return _rows_to_batch(rows)


def _normalize_records(batch) -> dict:
    return _rows_to_batch([manifest_row(record) for record in batch.to_dict("records")])


def _ray_paths(source: Source) -> dict:
    """Ray Data reader arguments: a URI source is read through the pyarrow filesystem that
    opened it (its ?region= and other options kept), a local one by path."""
    if not source.remote:
        return {"paths": source.location}
    filesystem, path = open_filesystem(source.location)
    return {"paths": path, "filesystem": filesystem}


def read_source(source: Source, read_cpus: float):
    """The source as a Ray Dataset of rows (ingest.sources.ROW_COLUMNS)."""
    import ray.data

    if source.kind == "folder":
        rows = folder_rows(source)
        if not rows:
            raise SourceError(f"no images under {source.location}")
        return ray.data.from_items(rows)
    if source.kind == "jsonl":
        lines = ray.data.read_text(**_ray_paths(source), num_cpus=read_cpus)
        return lines.map_batches(_parse_lines, batch_format="numpy", num_cpus=read_cpus)
    records = ray.data.read_parquet(**_ray_paths(source), num_cpus=read_cpus)
    return records.map_batches(_normalize_records, batch_format="pandas", num_cpus=read_cpus)


def ensure_ray(local_cpus: int | None = None) -> None:
    """Ray for this process: the cluster RAY_ADDRESS names (a RayJob's), else a new local
    instance with `local_cpus` logical CPUs (None: the machine's) - never a stray cluster
    another process left on this machine, which a bare ray.init() would join."""
    import ray

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS") or "local"
        local = address == "local"
        ray.init(address=address, num_cpus=local_cpus if local else None,
                 include_dashboard=False if local else None, log_to_driver=False,
                 configure_logging=False)


def _embedded_rows(source: Source, settings: Settings, image_size: int, milvus):
    """read -> fetch/decode (actors) -> embed (actor pool): a lazy Ray Dataset."""
    from ingest.stages import Embed, FetchDecode

    opts = settings.ingest
    ds = read_source(source, opts.fetch_num_cpus)
    ds = ds.map_batches(
        FetchDecode, batch_format="numpy", batch_size=opts.batch_size,
        fn_constructor_kwargs=dict(root=source.root, image_size=image_size,
                                   embedder=settings.embedder, ingest=opts, milvus=milvus),
        concurrency=opts.fetch_actors, num_cpus=opts.fetch_num_cpus,
    )
    return ds.map_batches(
        Embed, batch_format="numpy", batch_size=opts.batch_size,
        fn_constructor_kwargs=dict(embedder=settings.embedder),
        concurrency=opts.embed_actors, num_cpus=opts.embed_num_cpus, num_gpus=opts.embed_num_gpus,
    )


def _tally(summary: IngestSummary, results: list[dict]) -> list[dict]:
    """Fold the write tasks' results into the summary; returns the skipped rows."""
    skipped_rows, written = [], []
    for result in results:
        written += result["written"]
        summary.already += result["already"]
        skipped_rows += result["skipped"]
    summary.indexed = len(set(written))
    summary.duplicates = len(written) - summary.indexed
    summary.skipped = Counter(row["reason"] for row in skipped_rows)
    summary.seen = len(written) + summary.already + len(skipped_rows)
    return skipped_rows


def run_ingest(location: str, settings: Settings, reembed: bool = False) -> IngestSummary:
    """Index a folder or manifest into the configured collection; idempotent and resumable."""
    from deployments.embedder.checkpoint import embedding_dim, resolve
    from deployments.catalogue.store import CatalogueStore
    from ingest.stages import make_sink

    source = Source.open(location)
    files = resolve(settings.embedder)  # fail early (and clearly) on missing weights
    dim = embedding_dim(settings.embedder)
    store = CatalogueStore(settings.milvus, dim, shared=True)  # Lite: a shared local server
    store.ensure_collection()
    milvus = settings.milvus.model_copy(update={"uri": store.uri})
    summary = IngestSummary(source.location, settings.milvus.collection, store.uri)
    ensure_ray()

    start = time.perf_counter()
    ds = _embedded_rows(source, settings, files.vision.image_size, None if reembed else milvus)
    sink = make_sink(milvus, dim, settings.ingest.write_batch_size)
    ds.write_datasink(sink, ray_remote_args={"num_cpus": settings.ingest.write_num_cpus})
    summary.seconds = time.perf_counter() - start

    skipped_rows = _tally(summary, sink.results)
    summary.report = write_report(Path(settings.ingest.report), skipped_rows)
    if summary.indexed:
        store.flush()  # seal the new rows so searches use the index
    summary.count_after = store.count()
    store.close()
    return summary


def write_report(path: Path, rows: list[dict]) -> str:
    """The skipped items, one JSON object a line (id, image, reason, message)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    return str(path)
