"""Ingest throughput: `pardus ingest` (Ray Data) against a notebook-style loop, in one run.

    .venv/bin/python benchmarks/ingest_throughput.py [--items 64]

Same images, same full-size random-weight model (bge-base + EVA02-CLIP-B-16), same Milvus
Lite store. The baseline opens each image, encodes it alone and inserts it alone; the pipeline
decodes in parallel, embeds in batches and writes in batches. Prints items/s and the ratio,
for the pipeline in fp32 and in bf16, end to end and past its fixed start-up (Ray actors and
the model load, measured with an 8-item run; the loop's model load is not timed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from deployments.catalogue import lite_server  # noqa: E402
from deployments.settings import EmbedderSettings, IngestSettings, MilvusSettings, Settings  # noqa: E402
from deployments.catalogue.items import CatalogueItem  # noqa: E402
from deployments.catalogue.store import CatalogueStore  # noqa: E402
from ingest.samples import write_sample_catalogue  # noqa: E402

console = Console()


def notebook_loop(settings: Settings, folder: Path, items) -> float:
    """The loop a notebook would write: one image in, one vector out, one insert."""
    from PIL import Image

    from deployments.embedder.encoder import Embedder

    embedder = Embedder(settings.embedder.model_copy(update={"batch_size": 1}))
    store = CatalogueStore(settings.milvus, embedder.dim, shared=True)
    store.ensure_collection()
    start = time.perf_counter()
    for item in items:
        image = Image.open(folder / item.image)
        vector = embedder.encode_images([image]).vectors
        store.upsert([CatalogueItem(id=item.item_id, title=item.title, category=item.category,
                                    price=item.price, rating=item.rating, image=item.image)], vector)
    seconds = time.perf_counter() - start
    assert store.count() == len(items)
    store.close()
    return len(items) / seconds


def pipeline(settings: Settings, manifest: Path, n: int) -> float:
    """Seconds for `pardus ingest` of n items, start-up (actors, model load) included."""
    from ingest.pipeline import run_ingest

    summary = run_ingest(str(manifest), settings)
    assert summary.indexed == n and summary.count_after == n, summary
    return summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=REPO / "data" / "bench")
    args = parser.parse_args()
    model = args.workdir / "model-full"
    if not (model / "Visualized_base_en_v1.5.pth").exists():
        from deployments.tiny.embedder import write_tiny_model

        with console.status("writing the full-size random-weight model"):
            write_tiny_model(model, full_size=True)
    folder = args.workdir / f"catalogue-{args.items}"
    items = write_sample_catalogue(folder, count=args.items)
    small = args.workdir / "catalogue-8"  # measures the pipeline's fixed start-up cost
    write_sample_catalogue(small, count=8)
    db = Path(tempfile.mkdtemp(prefix="pardus-bench-")) / "bench.db"
    base = Settings(
        embedder=EmbedderSettings(checkpoint=str(model / "Visualized_base_en_v1.5.pth"),
                                  text_model=str(model / "bge-base-en-v1.5")),
        milvus=MilvusSettings(uri=str(db)),
        ingest=IngestSettings(batch_size=16, report=str(db.parent / "report.jsonl")),
    )

    def variant(collection: str, dtype: str) -> Settings:
        return base.model_copy(update={
            "milvus": base.milvus.model_copy(update={"collection": collection}),
            "embedder": base.embedder.model_copy(update={"dtype": dtype}),
        })

    import ray

    ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        with console.status("notebook loop (fp32, one at a time)"):
            loop = notebook_loop(variant("loop", "float32"), folder, items)
        rows = []
        for dtype in ("float32", "bfloat16"):
            with console.status(f"pardus ingest ({dtype})"):
                fixed = pipeline(variant(f"small_{dtype}", dtype), small / "items.jsonl", 8)
                total = pipeline(variant(f"pipe_{dtype}", dtype), folder / "items.jsonl", len(items))
            rows.append((dtype, len(items) / total, (len(items) - 8) / max(total - fixed, 1e-9), fixed))
    finally:
        ray.shutdown()
        lite_server.stop(db)
    table = Table(title=f"ingest of {len(items)} images, full-size model, {os.cpu_count()} cores")
    for column in ("method", "items/s end to end", "ratio", "items/s past start-up", "ratio",
                   "start-up s"):
        table.add_column(column, justify="right")
    table.add_row("notebook loop, fp32", f"{loop:.2f}", "1.00x", f"{loop:.2f}", "1.00x", "-")
    for dtype, end_to_end, steady, fixed in rows:
        table.add_row(f"pardus ingest, {dtype}", f"{end_to_end:.2f}", f"{end_to_end / loop:.2f}x",
                      f"{steady:.2f}", f"{steady / loop:.2f}x", f"{fixed:.1f}")
    console.print(table)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
