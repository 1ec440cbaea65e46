"""Catalogue search latency: the embedded Milvus 2.5 core (today's default) against Milvus Lite
3.2.2 (the default before), the same rows and queries, in one run.

    benchmarks/lite3/setup.sh          # once: Milvus Lite 3.2.2 in a folder of its own
    .venv/bin/python benchmarks/search_latency.py [--items 100000] [--queries 200] [--work DIR]

Writing is the slow part (Lite 3.2.2 takes ~35 min for 300k rows): with --work, the data stays
in DIR and a later run reuses every collection already filled.

Items have 1 to 5 pictures (3 on average: ~300k rows at 100k items), each row two random unit
768-d vectors and the item's words (five words of a 2,000-word vocabulary, a category, a
brand, a one-token model code). Both engines run as servers on 127.0.0.1 and are written and
searched through our store (schema, plans, grouping by item), with the index each engine runs
by default (2.5 core: AUTOINDEX; Lite 3.2.2: HNSW as Pardus configured it) and FLAT on both.
Queries alternate between engines round by round, so the machine's noise falls on all rows
alike. Prints p50/p99 in ms per plan and the ratio of Lite 3.2.2 to the 2.5 core.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from pardus.deployments.catalogue.filters import SearchFilters  # noqa: E402
from pardus.deployments.catalogue.items import CatalogueItem  # noqa: E402
from pardus.deployments.catalogue.plans import make_plan  # noqa: E402
from pardus.deployments.catalogue.store import CatalogueStore, Picture  # noqa: E402
from pardus.deployments.names import Mode, QueryKind
from pardus.deployments.settings import MilvusSettings, SearchSettings  # noqa: E402
from tests.support.milvus_core import MilvusCore  # noqa: E402

console = Console()
DIM = 768
LITE3 = Path(os.environ.get("PARDUS_LITE3_DIR", REPO / ".lite3"))
PLANS = {  # what is timed: (label, kind, mode, filtered)
    "dense": (QueryKind.IMAGE, Mode.DENSE, False),
    "dense + filter": (QueryKind.IMAGE, Mode.DENSE, True),
    "BM25": (QueryKind.TEXT, Mode.LEXICAL, False),
    "hybrid RRF (text)": (QueryKind.TEXT, Mode.HYBRID, False),
    "hybrid weighted (composed)": (QueryKind.COMPOSED, Mode.HYBRID, False),
}


@dataclass
class Engine:
    name: str
    uri: str
    index: str
    process: subprocess.Popen | MilvusCore
    store: CatalogueStore | None = None
    times: dict[str, list[float]] = field(default_factory=dict)
    error: str = ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lite3(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(LITE3)}
    code = ("import sys; from milvus_lite.cmdline import main; sys.argv = ['milvus-lite', "
            f"'server', '--data-dir', {str(data_dir)!r}, '--host', '127.0.0.1', "
            f"'--port', '{port}']; main()")
    process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("Milvus Lite 3.2.2 did not start")


def catalogue(items: int, seed: int):
    """Yields pictures in batches: random unit vectors, words from a fixed vocabulary."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(2000)]
    categories = [f"cat{i}" for i in range(20)]
    batch = []
    for i in range(items):
        item = CatalogueItem(
            id=f"I{i:07d}", title=" ".join(rng.choice(words, 5)) + f" M{i:07d}",
            category=categories[i % 20], brand=f"brand{i % 300}", price=float(i % 500),
            images=tuple(f"{i}-{j}.jpg" for j in range(1 + int(rng.integers(5)))))
        vectors = rng.standard_normal((2 * len(item.images), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch += [Picture(item, j, vectors[2 * j], vectors[2 * j + 1])
                  for j in range(len(item.images))]
        if len(batch) >= 2000:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(engine: Engine, items: int) -> None:
    settings = MilvusSettings(uri=engine.uri, collection=f"bench_{engine.index.lower()}",
                              index_type=engine.index, timeout_s=600)
    store = CatalogueStore(settings, DIM)
    store.ensure_collection()
    if store.count() == items:  # filled by an earlier run (--work)
        console.print(f"{engine.name} ({engine.index}): reusing {store.count_rows()} rows")
        engine.store = store
        return
    start, rows = time.perf_counter(), 0
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"{engine.name}: writing", total=items * 3)
        for batch in catalogue(items, seed=1):
            rows += store.upsert(batch)
            progress.update(task, completed=rows)
    store.flush()
    console.print(f"{engine.name}: {rows} rows in {time.perf_counter() - start:.0f} s "
                  f"({rows / (time.perf_counter() - start):.0f} rows/s)")
    engine.store = store


def queries(n: int, seed: int) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        vector = rng.standard_normal(DIM).astype(np.float32)
        out.append((vector / np.linalg.norm(vector), f"w{rng.integers(2000)} M{i * 97:07d}"))
    return out


def measure(engines: list[Engine], n: int) -> None:
    search = SearchSettings()
    work = queries(n, seed=2)
    for label, (kind, mode, filtered) in PLANS.items():
        plan = make_plan(kind, search, mode)
        filters = SearchFilters(categories=["cat3", "cat7"]) if filtered else None
        for round_ in range(n):  # one query on each engine, then the next
            vector, text = work[round_]
            for engine in engines:
                if engine.error:
                    continue
                start = time.perf_counter()
                try:
                    hits = engine.store.search(plan, vector, text, 10, filters).hits
                except Exception as exc:  # an engine that cannot run a plan: say so
                    engine.times.setdefault(label, []).append(float("nan"))
                    engine.error = engine.error or f"{label}: {str(exc)[:120]}"
                    continue
                engine.times.setdefault(label, []).append((time.perf_counter() - start) * 1000)
                assert len({h.item.id for h in hits}) == len(hits)  # grouped by item


def report(engines: list[Engine], items: int) -> None:
    table = Table(title=f"top-10 search at {items} items (~{items * 3} rows), p50 / p99 ms")
    table.add_column("plan")
    for engine in engines:
        table.add_column(f"{engine.name} ({engine.index})", justify="right")
    base = next((e for e in engines if e.name.startswith("core") and not e.error), None)
    for label in PLANS:
        cells = []
        for engine in engines:
            times = np.array(engine.times.get(label, [float("nan")]))
            p50, p99 = np.nanpercentile(times, 50), np.nanpercentile(times, 99)
            cell = f"{p50:.1f} / {p99:.1f}" if np.isfinite(p50) else "unsupported"
            if base is not None and engine is not base and np.isfinite(p50):
                ratio = p50 / np.nanpercentile(base.times[label], 50)
                cell += f"  ({ratio:.1f}x)"
            cells.append(cell)
        table.add_row(label, *cells)
    console.print(table)
    for engine in engines:
        if engine.error:
            console.print(f"{engine.name} ({engine.index}) failed: {engine.error}")
    console.print("Ratios: p50 of that engine over the first core column (same index family).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the data here")
    parser.add_argument("--lite3-index", action="append", default=None,
                        help="Lite 3.2.2 index types to measure (default: HNSW, its default "
                             "in Pardus before; FLAT too doubles its ~35 min write)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pardus-search-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    core = MilvusCore(work / "core.db", timeout=60)
    core.start()
    engines = [Engine("core 2.5", core.uri, "AUTOINDEX", core),
               Engine("core 2.5", core.uri, "FLAT", core)]
    lite3 = None
    if (LITE3 / "milvus_lite").is_dir():
        lite3, uri = start_lite3(work / "lite3")
        engines += [Engine("Lite 3.2.2", uri, index, lite3)
                    for index in args.lite3_index or ["HNSW"]]
    else:
        console.print(f"Milvus Lite 3.2.2 is not in {LITE3}: run benchmarks/lite3/setup.sh "
                      "for the side-by-side columns")
    try:
        for engine in engines:
            try:
                fill(engine, args.items)
            except Exception as exc:  # an engine without a feature the schema needs
                engine.error = f"writing: {str(exc)[:200]}"
        measure([e for e in engines if not e.error], args.queries)
        report(engines, args.items)
    finally:
        core.stop()
        if lite3 is not None:
            lite3.terminate()
            lite3.wait()


if __name__ == "__main__":
    random.seed(0)
    main()
