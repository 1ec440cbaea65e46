"""Search through Ray Serve over HTTP vs the same pipeline in process; the Embedder's batching.

    .venv/bin/python benchmarks/serve_latency.py [--embedder tiny|full|both]   # ~5-6 min, 2 cores

Tiny random-weight models (every stage real, rankings meaningless), a 24-item sample catalogue
in Milvus Lite, the app on a new local Ray, HTTP on 127.0.0.1; rows compared are measured in
alternating rounds, so the machine's noise falls on all of them alike. Prints:
(a) p50/p99 latency and queries/s over HTTP (httpx) at 1, 8 and 32 closed-loop clients, rerank
    off and on, composed queries (a text and a fresh picture each); beside it an app whose
    Embedder does not wait for batches to fill (batch_wait_timeout_s 0);
(b) at 1 client, the same SearchService in this process (a local Embedder, the same Milvus
    Lite, no Serve, no HTTP): Serve overhead = the p50 difference (goal <= 5 ms), split by the
    server's stage timings;
(c) at 32 clients, text-only: max_batch_size 32 vs 1 (two apps), over HTTP and straight through
    the Embedder handles, with the batch sizes reached (the deployment's histogram, delta per
    run), beside the model alone at batch 32 vs 1 (this machine's ceiling); goal >= 3x.
    `--embedder full` runs (c) on the full-size architecture with random weights.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pardus.ingest.samples import COLORS, PATTERNS, SHAPES, draw_product  # noqa: E402

console = Console()
if not console.is_terminal:
    console = Console(width=170)  # whole table rows in logs
TEXTS = ["a phone case with this", "a red leather bag like this", "this pattern on a mug",
         "a striped shirt for kids", "a lamp in this colour", "a gift for a cat lover"]
APP, NOWAIT, BATCHED, UNBATCHED = "pardus", "nowait", "batched", "unbatched"
LOCAL = "in process (no Serve, no HTTP)"


# -- workload -----------------------------------------------------------------------------------
def queries(n: int, seed: int, images: bool = True) -> list[tuple[str, bytes | None]]:
    """(text, JPEG bytes or None); a fresh picture per query (caches would flatter)."""
    rng, out = random.Random(seed), []
    for i in range(n):
        data = None
        if images:
            picture = draw_product(rng.choice(list(SHAPES)), rng.choice(list(COLORS)),
                                   rng.choice(PATTERNS), seed=rng.randrange(10**6),
                                   code=rng.randrange(4096))
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=90)
            data = buffer.getvalue()
        out.append((TEXTS[i % len(TEXTS)], data))
    return out


async def drive(call, batch: list, clients: int) -> tuple[list[float], float, list]:
    """Closed loop: each client sends its next request when its last one is answered.
    Returns (latencies in s, elapsed s, answers)."""
    pending, latencies, answers = iter(batch), [], []

    async def client() -> None:
        for request in pending:  # one iterator shared by the clients
            start = time.perf_counter()
            answers.append(await call(*request))
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    return latencies, time.perf_counter() - start, answers


def over_http(client, prefix: str, k: int, rerank: bool):
    async def call(text: str, image: bytes | None) -> dict:
        files = {"image": ("query.jpg", image, "image/jpeg")} if image else None
        response = await client.post(f"{prefix}/v1/search", files=files, data={
            "text": text, "k": str(k), "rerank": str(rerank).lower()})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:300]}")
        return response.json()
    return call


class InProcess:
    """SearchService in this process: a local Embedder, the app's Milvus, no Serve, no HTTP."""

    def __init__(self, overrides: dict):
        from pardus.deployments.settings import Settings
        from pardus.serve.factory import build_search_service, local_models

        settings = Settings(**overrides)
        self.service = build_search_service(settings, local_models(settings))
        self.store = self.service.store

    def search(self, k: int):
        from pardus.serve.search import Query

        async def call(text: str, image: bytes | None) -> dict:
            answer = await self.service.search(Query(text, image, k, None, rerank=False))
            return answer.model_dump()
        return call


# -- the Serve side -----------------------------------------------------------------------------
async def histogram(app: str) -> Counter:
    from ray import serve

    handle = serve.get_deployment_handle("Embedder", app)
    return Counter(await handle.batch_size_histogram.remote())


def replica_threads(app: str) -> str:
    """torch's threads in the app's Embedder replica (Ray caps OMP at a fractional actor's CPUs)."""
    import ray

    def threads(_replica) -> int:
        import torch
        return torch.get_num_threads()

    try:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["name"].startswith(f"SERVE_REPLICA::{app}#Embedder#")]
        actor = ray.get_actor(names[0], namespace="serve")
        return str(ray.get(actor.__ray_call__.remote(threads), timeout=30))
    except Exception as exc:  # a diagnostic only
        return f"? ({type(exc).__name__})"


async def wait_ready(client, prefix: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get(f"{prefix}/readyz")).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(1)
    raise RuntimeError(f"{prefix or '/'} never became ready")


async def deploy(client, name: str, overrides: dict, max_batch_size: int, wait_s: float) -> None:
    """On /<name>: the app as build_app wires it, reranker off, the Embedder's user_config
    set as the Serve config's `deployments` section sets it."""
    from ray import serve

    from pardus.serve.app import bind_app, deployment_options

    overrides = {**overrides, "reranker": {"enabled": False}}
    options = deployment_options()
    options = {**options, "Embedder": {**options["Embedder"], "user_config": {
        "max_batch_size": max_batch_size, "batch_wait_timeout_s": wait_s}}}
    serve.run(bind_app(overrides, options), name=name, route_prefix=f"/{name}")
    await wait_ready(client, f"/{name}")


# -- measuring ----------------------------------------------------------------------------------
@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    answers: list = field(default_factory=list)
    batches: Counter | None = None  # the Embedder's batch sizes over the runs (deltas)
    items: int = 1  # queries per call

    @property
    def p50(self) -> float:
        return float(np.percentile(self.latencies, 50)) * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) * self.items / self.elapsed

    def stage_p50(self, stage: str) -> float | None:
        values = [a["timings_ms"][stage] for a in self.answers if isinstance(a, dict)]
        return float(np.median(values)) if values else None


async def interleave(sides: dict, batches: list[list], clients: int) -> dict[str, Tally]:
    """sides: name -> (call, app whose Embedder histogram to diff, or None). Every batch runs
    on every side in turn, so the machine's noise falls on all sides alike."""
    tallies = {name: Tally(batches=Counter() if app else None) for name, (_, app) in sides.items()}
    for batch in batches:
        for name, (call, app) in sides.items():
            before = await histogram(app) if app else None
            latencies, elapsed, answers = await drive(call, batch, clients)
            tally = tallies[name]
            tally.latencies += latencies
            tally.elapsed += elapsed
            tally.answers += answers
            if app:
                tally.batches += await histogram(app) - before
    return tallies


def _reranked(answers: list[dict]) -> str:
    """How many answers the reranker ordered, of all."""
    if not answers:
        return "-"
    return f"{sum(a['rerank']['outcome'] == 'reranked' for a in answers)}/{len(answers)}"


def add_row(table: Table, label: str, clients: int | str, tally: Tally) -> None:
    ms = np.array(tally.latencies) * 1000
    answers = [a for a in tally.answers if isinstance(a, dict)]
    sizes = tally.batches
    mean, biggest = ((f"{sum(s * c for s, c in sizes.items()) / sum(sizes.values()):.1f}",
                      str(max(sizes))) if sizes else ("-", "-"))
    total, embed = tally.stage_p50("total"), tally.stage_p50("embed")
    figure = "-" if total is None else f"{total:.1f}", "-" if embed is None else f"{embed:.1f}"
    table.add_row(label, str(clients), str(len(ms) * tally.items), f"{np.percentile(ms, 50):.1f}",
                  f"{np.percentile(ms, 99):.1f}", f"{tally.rate:.1f}", *figure, mean, biggest,
                  _reranked(answers))


async def serve_levels(client, local: InProcess, args, table: Table) -> dict[str, Tally]:
    """Rerank off: the app, one whose Embedder does not wait for batches to fill and (at 1
    client) the in-process pipeline, in alternating rounds; then rerank on."""
    sides = {"Serve over HTTP": (over_http(client, "", args.k, False), APP),
             "Serve, Embedder batch wait 0": (over_http(client, f"/{NOWAIT}", args.k, False),
                                              NOWAIT),
             LOCAL: (local.search(args.k), None)}
    first = None
    for clients in (1, 8, 32):
        batches = [queries(len(chunk), seed=clients * 10_000 + int(chunk[0]))
                   for chunk in np.array_split(np.arange(args.requests), args.rounds)]
        chosen = {name: side for name, side in sides.items() if clients == 1 or name != LOCAL}
        tallies = await interleave(chosen, batches, clients)
        for name, tally in tallies.items():
            add_row(table, name, clients, tally)
        first = first or tallies
    for clients in (1, 8, 32):
        side = {"": (over_http(client, "", args.k, True), APP)}
        batch = queries(max(args.rerank_requests, clients), seed=1000 * clients)
        add_row(table, "Serve over HTTP, rerank", clients,
                (await interleave(side, [batch], clients))[""])
    return first


async def batching(client, overrides: dict, label: str, args, table: Table) -> dict:
    """(c) max_batch_size 32 vs 1 at 32 clients, text-only, interleaved rounds: over HTTP, then
    straight through the Embedder handles. Returns requests/s per (via, app)."""
    from ray import serve

    from pardus.deployments.embedder.queries import EmbedQuery

    def embed(handle):
        async def call(text: str, _image):
            return await handle.embed.remote(EmbedQuery(text=text))
        return call

    for name, size in ((BATCHED, 32), (UNBATCHED, 1)):
        await deploy(client, name, overrides, size, 0.01)
        await drive(over_http(client, f"/{name}", args.k, False), queries(8, 7, images=False), 2)
    batches = [queries(args.batch_requests // args.rounds, seed=5000 + i, images=False)
               for i in range(args.rounds)]
    rates = {"threads": replica_threads(BATCHED)}
    for via in ("HTTP search", "Embedder handle"):
        sides = {name: (over_http(client, f"/{name}", args.k, False) if via == "HTTP search"
                        else embed(serve.get_deployment_handle("Embedder", name)), name)
                 for name in (BATCHED, UNBATCHED)}
        for name, tally in (await interleave(sides, batches, 32)).items():
            rates[via, name] = tally.rate
            add_row(table, f"{label}, {via}, max_batch_size {32 if name == BATCHED else 1}",
                    32, tally)
    for name in (BATCHED, UNBATCHED):
        serve.delete(name)
    return rates


def model_alone(overrides: dict, label: str, table: Table, rounds: int = 4) -> dict:
    """encode_texts in this process (torch threads as in the replica) at batch 32 and 1 in
    alternating 2 s rounds: the most batching can give on this machine."""
    from pardus.deployments.embedder.encoder import Embedder
    from pardus.deployments.settings import Settings

    embedder = Embedder(Settings(**overrides).embedder)
    tallies = {size: Tally(items=size) for size in (32, 1)}
    for _ in range(rounds):
        for size, tally in tallies.items():
            texts = [TEXTS[i % len(TEXTS)] for i in range(size)]
            embedder.encode_texts(texts)
            start = time.perf_counter()
            while time.perf_counter() - start < 2.0:
                mark = time.perf_counter()
                embedder.encode_texts(texts)
                tally.latencies.append(time.perf_counter() - mark)
            tally.elapsed += time.perf_counter() - start
    embedder.close()
    for size, tally in tallies.items():
        add_row(table, f"{label}, model alone (no Serve), batch {size}", "-", tally)
    return {size: tally.rate for size, tally in tallies.items()}


# -- set-up and report --------------------------------------------------------------------------
def prepare(work: Path) -> dict:
    """Tiny models, the sample catalogue ingested into Milvus Lite; the app's settings."""
    from pardus.deployments.settings import Settings
    from pardus.deployments.tiny.embedder import write_tiny_model
    from pardus.deployments.tiny.phi3v import write_tiny_phi3v
    from pardus.ingest.pipeline import run_ingest
    from pardus.ingest.samples import write_sample_catalogue

    tiny = write_tiny_model(work / "tiny-model", seed=0)
    write_sample_catalogue(work / "catalogue", count=24)
    overrides = {
        "embedder": {"checkpoint": tiny["PARDUS_EMBEDDER__CHECKPOINT"],
                     "text_model": tiny["PARDUS_EMBEDDER__TEXT_MODEL"]},
        "milvus": {"uri": str(work / "pardus.db"), "collection": "bench", "index_type": "FLAT"},
        "reranker": {"model": str(write_tiny_phi3v(work / "phi3v-tiny")), "dtype": "float32",
                     "max_model_len": 4096, "num_crops": 1, "enforce_eager": True,
                     "timeout_s": 120, "grid_cell": 96, "max_tokens": 160, "max_candidates": 6},
        "serving": {"image_root": str(work / "catalogue")},
        "ingest": {"report": str(work / "report.jsonl")},
    }
    summary = run_ingest(str(work / "catalogue" / "items.jsonl"), Settings(**overrides))
    console.print(f"catalogue: {summary.indexed} items in Milvus Lite")
    return overrides


def full_size(work: Path, overrides: dict) -> dict:
    from pardus.deployments.tiny.embedder import write_tiny_model

    env = write_tiny_model(work / "full-model", seed=0, full_size=True)
    return {**overrides, "embedder": {"checkpoint": env["PARDUS_EMBEDDER__CHECKPOINT"],
                                      "text_model": env["PARDUS_EMBEDDER__TEXT_MODEL"]}}


def new_table(title: str) -> Table:
    table = Table(title=title)
    for column in ("path", "clients", "queries", "p50 ms", "p99 ms", "queries/s",
                   "server p50 ms", "embed p50 ms", "mean batch", "max batch", "reranked"):
        table.add_column(column, justify="right")
    return table


def print_overhead(tallies: dict[str, Tally]) -> None:
    local = tallies[LOCAL]
    for name, tally in tallies.items():
        if name == LOCAL:
            continue
        overhead = tally.p50 - local.p50
        console.print(
            f"{name}: Serve overhead at p50 = {tally.p50:.1f} - {local.p50:.1f} = [bold]"
            f"{overhead:.1f} ms[/] ({tally.p50 / local.p50:.2f}x; goal <= 5 ms: "
            f"{'met' if overhead <= 5 else 'not met'}); of it HTTP + proxy + ingress (client "
            f"p50 - server p50) {tally.p50 - tally.stage_p50('total'):.1f} ms, the Embedder "
            f"hop (embed p50 - in-process embed p50) "
            f"{tally.stage_p50('embed') - local.stage_p50('embed'):.1f} ms", soft_wrap=True)


async def run(args, work: Path, overrides: dict) -> None:
    import httpx
    import torch
    from ray import serve

    from pardus.serve.app import build_app

    started = time.perf_counter()
    serve.run(build_app({"settings": overrides}), name=APP, route_prefix="/")
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{args.port}", timeout=300,
                                 limits=limits) as client:
        await wait_ready(client, "")
        await deploy(client, NOWAIT, overrides, 32, 0.0)
        threads = replica_threads(APP)
        console.print(f"apps ready in {time.perf_counter() - started:.1f} s; torch threads in "
                      f"the Embedder replica: {threads} (in process: the same)")
        if threads.isdigit():
            torch.set_num_threads(int(threads))
        local = InProcess(overrides)
        for call in (over_http(client, "", args.k, False), local.search(args.k),
                     over_http(client, f"/{NOWAIT}", args.k, False),
                     over_http(client, "", args.k, True)):
            await drive(call, queries(8, seed=99), 2)  # warm-up
        table = new_table(f"(a, b) search, k={args.k}, a text and a fresh picture per query, "
                          "tiny models")
        tallies = await serve_levels(client, local, args, table)
        console.print(table)
        print_overhead(tallies)
        await local.store.close()
        for name in (APP, NOWAIT):
            serve.delete(name)  # frees the vLLM engine's CPU for (c)
        await batching_report(client, args, work, overrides)


async def batching_report(client, args, work: Path, overrides: dict) -> None:
    table = new_table(f"(c) Embedder batching at 32 clients, text-only queries, "
                      f"{args.batch_requests} per row in {args.rounds} interleaved rounds")
    rates = {}
    for kind in (["tiny", "full"] if args.embedder == "both" else [args.embedder]):
        settings = overrides if kind == "tiny" else full_size(work, overrides)
        rates[kind] = await batching(client, settings, kind, args, table)
        rates[kind]["alone"] = model_alone(settings, kind, table)
    console.print(table)
    for kind, rate in rates.items():
        http = rate["HTTP search", BATCHED] / rate["HTTP search", UNBATCHED]
        handle = rate["Embedder handle", BATCHED] / rate["Embedder handle", UNBATCHED]
        console.print(f"{kind} embedder (torch threads {rate['threads']}), max_batch_size 32 "
                      f"vs 1: [bold]{http:.2f}x[/] searches/s over HTTP (goal >= 3x: "
                      f"{'met' if http >= 3 else 'not met'}), {handle:.2f}x embeddings/s "
                      f"through the handle; the model alone, batch 32 vs 1: "
                      f"{rate['alone'][32] / rate['alone'][1]:.2f}x", soft_wrap=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240, help="per level, rerank off")
    parser.add_argument("--rerank-requests", type=int, default=16,
                        help="per level, rerank on (at least the number of clients)")
    parser.add_argument("--batch-requests", type=int, default=192, help="per row of (c)")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds in (b), (c)")
    parser.add_argument("--k", type=int, default=6)
    parser.add_argument("--embedder", choices=["tiny", "full", "both"], default="both",
                        help="model(s) for (c); full: the real architecture, random weights")
    parser.add_argument("--port", type=int, default=8161, help="HTTP port on 127.0.0.1")
    args = parser.parse_args()

    import ray
    from ray import serve

    from pardus.deployments.catalogue import lite_server

    console.print("Expect 2 shared CPU cores: figures are noisy; compare rows of one run.")
    with tempfile.TemporaryDirectory(prefix="serve-latency-") as folder:
        work = Path(folder)
        # A new local Ray (never a cluster found on the machine); 4 logical CPUs so the
        # deployments and the ingest's actors fit on 2 cores.
        ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        try:
            overrides = prepare(work)
            serve.start(http_options={"host": "127.0.0.1", "port": args.port})
            asyncio.run(run(args, work, overrides))
        finally:
            serve.shutdown()
            ray.shutdown()
            lite_server.stop(str(work / "pardus.db"))


if __name__ == "__main__":
    main()
