"""The generated benchmark on disk and in the store: drawn into a folder with a note, ingested
into a fresh version of its own catalogue (promoted; the older versions dropped)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pardus.deployments.catalogue.store import CatalogueStore
from pardus.deployments.settings import Settings
from pardus.evaluation.generate import Benchmark, make_benchmark, product_id, write_benchmark
from pardus.evaluation.metrics import chance_recall
from pardus.ingest.pipeline import IngestSummary, run_ingest


@dataclass(frozen=True)
class Generated:
    folder: Path
    queries: Path  # queries.jsonl
    benchmark: Benchmark


@dataclass(frozen=True)
class Ingested:
    summary: IngestSummary
    label: str  # the version written and promoted
    dropped: list[str]  # older versions of the benchmark's catalogue


def generate(folder: str | Path, items: int, queries: int, seed: int = 0) -> Generated:
    benchmark = make_benchmark(items, queries, seed)
    folder = Path(folder)
    path = write_benchmark(folder, benchmark)
    return Generated(folder, path, benchmark)


def foreign_items(settings: Settings) -> int:
    """How many items the live version of settings.milvus.collection holds when they are not a
    generated benchmark's (0: no live version, empty, or a benchmark): --generate refuses
    to replace a shop's catalogue."""
    store = CatalogueStore(settings.milvus, shared=True)
    try:
        if store.live() is None:
            return 0
        count = store.count()
        return count if count and not store.get([product_id(0)]) else 0
    finally:
        store.close()


def _next_label(labels: list[str]) -> str:
    numbers = [int(label[1:]) for label in labels if label[:1] == "v" and label[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


def ingest_benchmark(generated: Generated, settings: Settings) -> Ingested:
    """Ingest into a new version of settings.milvus.collection, make it live, drop the older
    ones: the catalogue then holds exactly the generated items."""
    store = CatalogueStore(settings.milvus, shared=True)
    try:
        older = [version.label for version in store.versions()]
    finally:
        store.close()
    label = _next_label(older)
    summary = run_ingest(str(generated.folder / "items.jsonl"), settings, version=label)
    store = CatalogueStore(settings.milvus, shared=True)
    try:
        if not summary.live:
            store.promote(label)
        for old in older:
            store.drop_version(old)
    finally:
        store.close()
    return Ingested(summary, label, older)


def write_note(generated: Generated, collection: str, model: str) -> Path:
    """README.md in the benchmark's folder: what it holds and how its answers are known."""
    bench = generated.benchmark
    n = len(bench.products)
    tags = Counter(q.tag for q in bench.queries)
    lines = [
        f"# Generated relevance benchmark (seed {bench.seed})", "",
        (f"- Catalogue: {n} drawn products in `items.jsonl` (pictures in `images/`, "
         f"{sum(p.views for p in bench.products)} in all), ingested into the catalogue "
         f"`{collection}` with {model}."),
        ("- Titles: `<brand> <colour> <pattern> <shape> <model number>`; the brands and model "
         "numbers are words no embedding has learnt, which only lexical search can match."),
        (f"- Queries: {len(bench.queries)} in `queries.jsonl` (pictures in `queries/`): "
         f"{bench.count('text')} text, {bench.count('image')} image, "
         f"{bench.count('composed')} composed; by tag: "
         + ", ".join(f"{tag} {count}" for tag, count in sorted(tags.items())) + "."),
        ("- Right answers, by construction: `attributes` (\"red striped mug\"): that look "
         "gain 2, same colour and shape gain 1; `model-number`: that product; image queries "
         "(`redrawn`, `cropped`, `recompressed`): that product gain 2, the same look gain 1; "
         "composed (`change-*`: product A's picture and one change): every product with A's "
         "look so changed."),
        f"- Chance: a random ranking scores recall@10 = 10/{n} = {chance_recall(n, 10):.3f}.",
        "", (f"Run it: `pardus eval queries.jsonl --in-process --collection {collection}` "
             "(see the Relevance section of Pardus's README)."), ""]
    path = generated.folder / "README.md"
    path.write_text("\n".join(lines))
    return path
