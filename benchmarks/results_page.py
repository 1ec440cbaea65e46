"""Results pages through SearchService in process: a text search with and without facets, page 1
against page 10, a price sort, similar-by-id, and what the search window costs, on the embedded
Milvus 2.5 core (pymilvus's local mode) and the same core run as a TCP server, in one run.

    .venv/bin/python benchmarks/results_page.py [--items 100000] [--queries 200] [--work DIR]

Items have 1 to 5 pictures (~300k rows at 100k items), each row two random unit 768-d vectors;
Zipf words, categories and brands, log-normal prices, ratings, stock, popularity, when added.
Written once through our store into the server's data file, copied for the embedded engine;
--work DIR keeps them for later runs. Text queries (two words) are embedded by the tiny
random-weight Visualized BGE (768-d) through serve.factory.local_models; "precomputed" rows get
the same vectors without the call. Rows and engines alternate call by call, after a warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402
from rich.table import Table  # noqa: E402

from pardus.deployments.catalogue.items import UNKNOWN, CatalogueItem  # noqa: E402
from pardus.deployments.catalogue.plans import make_plan  # noqa: E402
from pardus.deployments.catalogue.schema import ROW_FIELDS, WINDOW_FIELDS  # noqa: E402
from pardus.deployments.catalogue.store import CatalogueStore, Picture  # noqa: E402
from pardus.deployments.embedder.queries import Embedding, EmbedQuery  # noqa: E402
from pardus.deployments.names import FacetName, QueryKind, Sort  # noqa: E402
from pardus.deployments.settings import SearchSettings, Settings  # noqa: E402
from pardus.deployments.tiny.embedder import write_tiny_model  # noqa: E402
from pardus.serve.factory import build_search_service, local_models  # noqa: E402
from pardus.serve.schemas import SearchResponse  # noqa: E402
from pardus.serve.search import Models, Query, SearchService  # noqa: E402
from tests.support.milvus_core import MilvusCore  # noqa: E402

console = Console(width=160)
DIM, COLLECTION, WARM_UP = 768, "results_bench", 5
WORDS = [a + b + c + d for a in "kmrtlsvnpd" for b in "aeiou" for c in "bdfgkmnprt"
         for d in ("a", "o", "en", "is")]  # 2,000 made-up words
EMBED, TEXT, FACETS, PRICE = ("embed alone (tiny model, text)", "text search (hybrid RRF)",
                              "text search + 4 facets", "sort by price (price_asc)")
PAGE1, PAGE10, SIMILAR = "page 1 (of the walk)", "page 10 (10th call alone)", "similar-by-id"
FIXED, SMALL = "text, precomputed vector", "text, precomputed, window 10"
RAW, SLIM = ("Milvus call alone: window 1000, all row fields",
             "Milvus call alone: window 1000, window fields")  # the latter: as searches read
PLAN = make_plan(QueryKind.TEXT, SearchSettings())  # the default text plan: hybrid RRF


def zipf(rng: np.random.Generator, n: int, size: int | tuple) -> np.ndarray:
    weights = 1 / np.arange(1, n + 1)
    return rng.choice(n, size=size, p=weights / weights.sum())


def catalogue(items: int, seed: int = 1):
    """Yields pictures in batches of ~2,000 rows."""
    rng, now = np.random.default_rng(seed), int(time.time())
    for start in range(0, items, 700):
        n = min(700, items - start)
        words, cats, brands = zipf(rng, 2000, (n, 6)), zipf(rng, 40, n), zipf(rng, 800, n)
        counts = 1 + rng.integers(5, size=n)
        vectors = rng.standard_normal((2 * int(counts.sum()), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        batch, v = [], 0
        for i in range(n):
            rating = round(float(np.clip(rng.normal(4.1, 0.6), 1, 5)), 1)
            item = CatalogueItem(
                id=f"P{start + i:07d}", title=" ".join(WORDS[w] for w in words[i]),
                category=f"category{cats[i]}", brand=f"brand{brands[i]}",
                price=UNKNOWN if rng.random() < 0.02 else round(rng.lognormal(3.4, 1.0), 2),
                rating=UNKNOWN if rng.random() < 0.08 else rating,
                images=tuple(f"images/P{start + i:07d}-{j}.jpg" for j in range(counts[i])),
                in_stock=bool(rng.random() < 0.92), popularity=float(int(rng.pareto(1.2) * 20)),
                added_at=now - int(rng.integers(3 * 365 * 86400)))
            batch += [Picture(item, j, vectors[v + 2 * j], vectors[v + 2 * j + 1])
                      for j in range(counts[i])]
            v += 2 * counts[i]
        yield batch


def settings_for(uri: str, window: int, model: dict[str, str], work: Path) -> Settings:
    embedder = {k.removeprefix("PARDUS_EMBEDDER__").lower(): v for k, v in model.items()}
    return Settings(embedder=embedder, search={"window": window},
                    milvus={"uri": uri, "collection": COLLECTION, "timeout_s": 120,
                            "lite_server": False},  # a local path: pymilvus's local mode
                    serving={"image_root": str(work / "images")})


def prepare(work: Path, items: int) -> tuple[Path, Path]:
    """The server's and the embedded engine's data files with the same rows: written into the
    server through our store, then copied; reused when an earlier run wrote them."""
    server_file, embedded_file = work / "server" / "core.db", work / "embedded" / "core.db"
    stamp = work / "filled.json"
    filled = json.loads(stamp.read_text()) if stamp.exists() else {}
    if filled.get("items") == items:
        console.print(f"reusing {filled['rows']} rows in {work}")
        return server_file, embedded_file
    for path in (server_file, embedded_file, stamp):
        path.unlink(missing_ok=True)
    core = MilvusCore(server_file, timeout=120)
    core.start()
    try:
        store = CatalogueStore(settings_for(core.uri, 1000, {}, work).milvus, DIM)
        store.ensure_collection()
        start, rows = time.perf_counter(), 0
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("writing", total=items * 3)
            for batch in catalogue(items):
                rows += store.upsert(batch)
                progress.update(task, completed=rows)
        store.flush()
        store.close()
        took = time.perf_counter() - start
        console.print(f"wrote {rows} rows in {took:.0f} s ({rows / took:.0f} rows/s)")
    finally:
        core.stop()
    embedded_file.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(server_file, embedded_file)
    stamp.write_text(json.dumps({"items": items, "rows": rows}))
    return server_file, embedded_file


@dataclass(frozen=True)
class Probe:  # one round's query: its words, their vector, an item's id (similar-by-id)
    text: str
    vector: np.ndarray
    item_id: str


@dataclass
class Engine:
    name: str
    full: SearchService  # window 1000, the real embedding call
    fixed: SearchService  # window 1000, precomputed vectors
    small: SearchService  # window 10, precomputed vectors
    models: Models
    raw: CatalogueStore  # for the engine adapter's call alone (diagnostic rows)
    samples: dict[str, list[tuple[float, SearchResponse | None]]] = field(default_factory=dict)

    def times(self, row: str) -> list[float]:
        return [ms for ms, _ in self.samples.get(row, [])]

    def responses(self, row: str) -> list[SearchResponse]:
        return [response for _, response in self.samples.get(row, []) if response is not None]


def engine(name: str, uri: str, model: dict[str, str], work: Path, models: Models,
           precomputed: Models) -> Engine:
    def service(window: int, with_models: Models) -> SearchService:
        return build_search_service(settings_for(uri, window, model, work), with_models)

    return Engine(name, service(1000, models), service(1000, precomputed),
                  service(10, precomputed), models,
                  CatalogueStore(settings_for(uri, 1000, model, work).milvus))


Sample = tuple[str, float, SearchResponse | None]  # row, ms, the response (stage timings)
Row = Callable[[Engine, Probe], Awaitable[list[Sample]]]


async def timed(call: Awaitable) -> tuple[float, object]:
    start = time.perf_counter()
    result = await call
    return (time.perf_counter() - start) * 1000, result


def query(probe: Probe, **changes) -> Query:
    return Query(text=probe.text, k=10, rerank=False, **changes)


def one(label: str, call: Callable[[Engine, Probe], Awaitable]) -> Row:
    async def row(e: Engine, probe: Probe) -> list[Sample]:
        ms, result = await timed(call(e, probe))
        return [(label, ms, result if isinstance(result, SearchResponse) else None)]
    return row


async def walk(e: Engine, probe: Probe) -> list[Sample]:
    """Page 1, then `next` nine times: the first and the tenth call are timed."""
    ms, page = await timed(e.full.search(query(probe)))
    out = [(PAGE1, ms, page)]
    for _ in range(9):
        if page.next is None:  # fewer than 100 relevant products: no page 10
            return [*out, (PAGE10, float("nan"), None)]
        ms, page = await timed(e.full.search(query(probe, cursor=page.next)))
    return [*out, (PAGE10, ms, page)]


def engine_call(label: str, fields: list[str]) -> Row:
    """The engine adapter's hybrid search alone: no gateway thread, no hits made into items."""
    async def row(e: Engine, probe: Probe) -> list[Sample]:
        start = time.perf_counter()
        e.raw.engine.search(e.raw.target(), PLAN, probe.vector, probe.text, 1000, "", fields)
        return [(label, (time.perf_counter() - start) * 1000, None)]
    return row


ROWS: list[Row] = [  # each: one call on one engine (the walk: ten)
    one(EMBED, lambda e, q: e.models.embed(EmbedQuery(text=q.text))),
    one(TEXT, lambda e, q: e.full.search(query(q))),
    one(FACETS, lambda e, q: e.full.search(query(q, facets=tuple(FacetName)))),
    one(PRICE, lambda e, q: e.full.search(query(q, sort=Sort.PRICE_ASC))),
    walk,
    one(SIMILAR, lambda e, q: e.full.similar(q.item_id, query(q))),
    one(FIXED, lambda e, q: e.fixed.search(query(q))),
    one(SMALL, lambda e, q: e.small.search(query(q))),
    engine_call(RAW, ROW_FIELDS),
    engine_call(SLIM, WINDOW_FIELDS),
]
LABELS = [EMBED, TEXT, FACETS, PRICE, PAGE1, PAGE10, SIMILAR, FIXED, SMALL, RAW, SLIM]


async def measure(engines: list[Engine], probes: list[Probe]) -> None:
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("measuring", total=len(probes))
        for number, probe in enumerate(probes):
            for row in ROWS:
                for e in engines:  # call by call: engines and rows alternate every round
                    samples = await row(e, probe)
                    for label, ms, response in samples if number >= WARM_UP else ():
                        e.samples.setdefault(label, []).append((ms, response))
            progress.advance(task)


def p(values: list[float], q: float) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanpercentile(values, q)) if np.isfinite(values).any() else float("nan")


def stage(e: Engine, row: str, name: str) -> float:
    return p([r.timings_ms.get(name, 0.0) for r in e.responses(row)], 50)


def ratios(e: Engine) -> dict[str, str]:
    """The goals and the window's cost, from this engine's p50s."""
    med = lambda row: p(e.times(row), 50)  # noqa: E731

    def goal(row: str, base: str, met: Callable[[float], bool]) -> str:
        ratio = med(row) / med(base)
        return f"{ratio:.2f}x ({'met' if met(ratio) else 'NOT met'})"

    return {
        "facets / text search (goal <= 1.25)": goal(FACETS, TEXT, lambda r: r <= 1.25),
        "page 10 / page 1 (goal <= 2)": goal(PAGE10, PAGE1, lambda r: r <= 2),
        "similar-by-id / text search (goal < 1)": goal(SIMILAR, TEXT, lambda r: r < 1),
        "price sort / text search": f"{med(PRICE) / med(TEXT):.2f}x",
        "embed stage of a text search (model alone)":
            f"{stage(e, TEXT, 'embed'):.1f} ms ({med(EMBED):.1f} ms)",
        "window 1000 / window 10 (precomputed)":
            f"{med(FIXED) / med(SMALL):.1f}x (+{med(FIXED) - med(SMALL):.0f} ms)",
        "Milvus call: window fields / all (with `images`)": f"{med(SLIM) / med(RAW):.2f}x",
        "text search window: products / relevant": " / ".join(
            f"{p([getattr(r, f) for r in e.responses(TEXT)], 50):.0f}"
            for f in ("window", "relevant")),
    }


def report(engines: list[Engine], items: int, n: int, load: tuple) -> None:
    table = Table(title=f"results pages at {items} items, {n} queries a row: p50 / p99 ms; "
                        "stages (the response's timings): p50 ms of embed / search / arrange")
    table.add_column("row")
    for e in engines:
        table.add_column(e.name, justify="right")
        table.add_column("stages", justify="right")
    for row in LABELS:
        cells = []
        for e in engines:
            times, responses = e.times(row), e.responses(row)
            missing = f" ({int(np.isnan(times).sum())} missing)" if np.isnan(times).any() else ""
            cells.append(f"{p(times, 50):.1f} / {p(times, 99):.1f}{missing}")
            cells.append(" / ".join(f"{stage(e, row, s):.1f}" for s in
                                    ("embed", "search", "arrange")) if responses else "")
        table.add_row(row, *cells)
    table.add_section()
    columns = [ratios(e) for e in engines]
    for label in columns[0]:  # ratios of p50s; the window: medians
        table.add_row(label, *(cell for column in columns for cell in (column[label], "")))
    console.print(table)
    console.print(f"load average (1, 5, 15 min) before {tuple(round(x, 2) for x in load)}, "
                  f"after {tuple(round(x, 2) for x in os.getloadavg())}; {os.cpu_count()} CPUs")


async def run(args: argparse.Namespace, work: Path) -> None:
    server_file, embedded_file = prepare(work, args.items)
    model = write_tiny_model(work / "tiny-model", seed=0)
    models = local_models(settings_for(str(embedded_file), 1000, model, work))
    rng, probes = np.random.default_rng(2), []
    for _ in range(args.queries):
        text = " ".join(WORDS[w] for w in zipf(rng, 300, 2))  # two of the 300 commonest words
        vector = (await models.embed(EmbedQuery(text=text))).vector
        probes.append(Probe(text, vector, f"P{rng.integers(args.items):07d}"))
    vectors = {probe.text: probe.vector for probe in probes}

    async def lookup(query: EmbedQuery) -> Embedding:  # the same vector, no embedding call
        return Embedding(vectors[query.text])

    precomputed = Models(lookup, models.embed_pictures)
    core = MilvusCore(server_file, timeout=120)
    core.start()
    load = os.getloadavg()
    try:
        engines = [engine("embedded (local mode)", str(embedded_file), model, work, models,
                          precomputed),
                   engine("2.5 server (TCP)", core.uri, model, work, models, precomputed)]
        for e in engines:
            console.print(f"{e.name}: {await e.full.store.count()} items")
        await measure(engines, probes[:WARM_UP] + probes)  # the warm-up: the first queries
        report(engines, args.items, args.queries, load)
        for e in engines:
            await asyncio.gather(*(svc.store.close() for svc in (e.full, e.fixed, e.small)))
            e.raw.close()
    finally:
        core.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the data here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="pardus-results-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    asyncio.run(run(args, work))


if __name__ == "__main__":
    main()
