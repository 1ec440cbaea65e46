"""Milvus search latency at 100k vectors: Milvus Lite (shared server) and a Milvus 2.3 server.

    tests/run-isolated .venv/bin/python benchmarks/search_latency.py [--vectors 100000]

Run it through tests/run-isolated: the Milvus server binds every interface and must live in
a loopback-only network namespace (without one, only Lite is measured). Inserts random unit
768-d vectors with typed fields through our store, builds HNSW, then times top-10 searches
(with and without a category filter) one after another: p50/p99 in milliseconds.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from deployments.catalogue import lite_server  # noqa: E402
from deployments.catalogue.filters import SearchFilters  # noqa: E402
from deployments.settings import MilvusSettings  # noqa: E402
from deployments.catalogue.items import CatalogueItem  # noqa: E402
from deployments.catalogue.store import CatalogueStore  # noqa: E402
from tests.support import milvus_server  # noqa: E402

console = Console()
DIM = 768
CATEGORIES = ["Clothing", "Home & Kitchen", "Toys", "Electronics", "Beauty"]


def fill(store: CatalogueStore, n: int, chunk: int = 1000, flush_every: int = 20_000) -> float:
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for first in range(0, n, chunk):
        count = min(chunk, n - first)
        vectors = rng.normal(size=(count, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        items = [CatalogueItem(id=f"v{first + i}", title=f"item {first + i}",
                               category=CATEGORIES[(first + i) % 5], price=float((first + i) % 100))
                 for i in range(count)]
        store.upsert(items, vectors)
        if (first + count) % flush_every == 0:
            store.flush()  # a bulk load seals as it goes: big unsealed tables are slow
    return time.perf_counter() - start


def wait_until_indexed(store: CatalogueStore, queries: np.ndarray, limit_s: float = 300) -> float:
    """Indexes are built in the background after a flush: wait until latency is steady
    (three rounds in a row within 15 % of each other), then measure."""
    start, medians = time.perf_counter(), []
    while time.perf_counter() - start < limit_s:
        medians.append(float(np.median(latencies(store, queries[:5]))))
        last = medians[-3:]
        if len(last) == 3 and max(last) <= 1.15 * min(last):
            break
        time.sleep(3)
    return time.perf_counter() - start


def latencies(store: CatalogueStore, queries: np.ndarray, filters=None) -> np.ndarray:
    out = []
    for query in queries:
        start = time.perf_counter()
        store.search(query, k=10, filters=filters)
        out.append((time.perf_counter() - start) * 1000)
    return np.array(out)


def measure(name: str, settings: MilvusSettings, n: int, queries: np.ndarray, table: Table) -> None:
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    with console.status(f"{name}: inserting {n} vectors"):
        insert_s = fill(store, n)
        store.flush()
        wait_s = wait_until_indexed(store, queries)
    console.print(f"{name}: {n / insert_s:,.0f} rows/s inserted, index ready {wait_s:.0f} s after flush")
    assert store.count() == n
    for level in ("Strong", "Session", "Bounded"):
        store.settings = store.settings.model_copy(update={"consistency_level": level})
        for label, filters in (("top-10", None), ("top-10 + category",
                                                  SearchFilters(categories=["Toys"]))):
            ms = latencies(store, queries, filters)
            table.add_row(name, level, label, f"{np.percentile(ms, 50):.1f}",
                          f"{np.percentile(ms, 99):.1f}")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    queries = rng.normal(size=(args.queries, DIM)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    table = Table(title=f"Milvus search latency, {args.vectors:,} x {DIM}-d, HNSW (M 16, ef 128)")
    for column in ("backend", "consistency", "query", "p50 ms", "p99 ms"):
        table.add_column(column, justify="right")
    work = Path(tempfile.mkdtemp(prefix="pardus-latency-"))
    try:
        measure("Milvus Lite", MilvusSettings(uri=str(work / "lite.db"), collection="bench", timeout_s=120),
                args.vectors, queries, table)
    finally:
        lite_server.stop(work / "lite.db")
    if milvus_server.network_is_private() and milvus_server.binary():
        with milvus_server.milvus_server(work / "server") as server:
            uri = server.uri
            measure("Milvus 2.3 server", MilvusSettings(uri=uri, collection="bench", timeout_s=120),
                    args.vectors, queries, table)
    else:
        console.print("[yellow]Milvus server skipped: run through tests/run-isolated[/]")
    console.print(table)


if __name__ == "__main__":
    main()
