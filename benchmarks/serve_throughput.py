"""Serving throughput, side by side: in process, plain uvicorn, Serve before and after issue 22,
and a peer model server, interleaved in one run.

    .venv/bin/python benchmarks/serve_throughput.py            # ~15 min on 2 cores
    .venv/bin/python benchmarks/serve_throughput.py --quick    # ~6 min, fewer requests

Arms (every one on the same tiny random-weight models and the same Milvus catalogue):
  A  in process: SearchService called in this process (no HTTP, no Serve);
  B  plain: the same SearchService behind uvicorn, one process, no Ray;
  C  Serve before: `pardus serve`'s code at --before (a git worktree), default mode;
  D  Serve after: this tree's `pardus serve` (throughput-optimised mode, Python proxy);
  DH Serve after with Ray's HAProxy ingress (RAY_SERVE_ENABLE_HA_PROXY=1, as on Kubernetes);
     its cluster also runs side apps: no caches, batch size 1, the result cache on, and
     embed-only (an HTTP deployment calling the same Embedder deployment class);
  E  peer: the same Embedder under LitServe (max_batch_size 32), embed-only, against DH's
     embed-only app.
Servers run as child processes on 127.0.0.1; their CPU time (each process and its children,
from psutil) is read around every run. On a machine with 4 or more cores this load generator
keeps to the last core and the servers to the others; on fewer it shares them (its own CPU per
request is printed beside theirs).

Prints: closed-loop p50/p99 and throughput at 1, 8, 16 and 32 clients (a text and a fresh
picture per search: no cache hits); an open-loop rate sweep with the highest rate served at
p99 <= 250 ms; the Embedder's batching gain over HTTP at 32 clients against the model's own;
a Zipf(1.1) query log over 10k distinct queries, one client, with no cache, the query cache
and the query + result caches; embed-only
throughput against the peer; CPU ms per request by process; the issue's goals, met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import litserve as ls  # arm E only: pip install -e '.[bench]'
except ImportError:
    ls = None

REPO = Path(__file__).resolve().parents[1]
BEFORE = "8bb4f5f"  # main as it was when issue 22 was filed
HOST = "127.0.0.1"
TEXTS = ["a phone case with this", "a red leather bag like this", "this pattern on a mug",
         "a striped shirt for kids", "a lamp in this colour", "a gift for a cat lover"]
LEVELS = (1, 8, 16, 32)
P99_GOAL_MS = 250.0


# == server roles (child processes) ==============================================================
def role_plain(port: int, overrides: dict) -> None:
    """B: the service in one process behind uvicorn, no Ray."""
    import uvicorn

    from pardus.deployments.settings import Settings
    from pardus.serve.api import create_api
    from pardus.serve.factory import build_search_service, local_models

    settings = Settings(**overrides)
    api = create_api(build_search_service(settings, local_models(settings)))
    uvicorn.run(api, host=HOST, port=port, log_level="warning", access_log=False)


def role_serve(port: int, overrides: dict, extras: bool) -> None:
    """C, D, DH: what `pardus serve` runs (start_service: Ray, Serve, the app); with extras,
    the side apps: no caches, batch size 1, result cache on, embed-only."""
    from pardus.cli.service import start_service, stop_service

    try:
        start_service(overrides, HOST, port)
        if extras:
            deploy_extras(overrides)
        print("READY", flush=True)
        while True:
            time.sleep(3600)
    finally:
        stop_service()


def deploy_extras(overrides: dict) -> None:
    from ray import serve
    from starlette.requests import Request

    from pardus.deployments.embedder.deployment import EmbedderDeployment
    from pardus.deployments.embedder.queries import EmbedQuery
    from pardus.serve.app import bind_app, deployment_options

    # The side apps ask little CPU of Ray's 4 logical CPUs (the main app holds 1.25): they
    # run on the same two cores either way.
    options = {name: {**opts, "ray_actor_options": {**opts.get("ray_actor_options", {}),
                                                    "num_cpus": 0.1}}
               for name, opts in deployment_options().items()}
    serving = overrides.get("serving", {})
    nocache = {**overrides, "serving": {**serving, "query_cache_mb": 0}}
    serve.run(bind_app(nocache, options), name="nocache", route_prefix="/nocache")
    results = {**overrides, "serving": {**serving, "result_cache_s": 30}}
    serve.run(bind_app(results, options), name="results", route_prefix="/results")
    single = {**options, "Embedder": {**options["Embedder"], "user_config": {
        "max_batch_size": 1, "batch_wait_timeout_s": 0}}}
    serve.run(bind_app(nocache, single), name="b1", route_prefix="/b1")

    @serve.deployment(name="EmbedOnly", max_ongoing_requests=256,
                      ray_actor_options={"num_cpus": 0.1})
    class EmbedOnly:
        def __init__(self, embedder):
            self.embedder = embedder

        async def __call__(self, request: Request) -> dict:
            text = (await request.json())["text"]
            embedding = await self.embedder.embed.remote(EmbedQuery(text=text))
            return {"vector": embedding.vector.tolist()}

    embedder = EmbedderDeployment.options(**options["Embedder"]).bind(
        {"embedder": overrides["embedder"]})
    serve.run(EmbedOnly.bind(embedder), name="embed", route_prefix="/embed")


if ls is not None:  # module level: LitServe's worker processes import it by name
    class LitEmbedAPI(ls.LitAPI):
        """E: the same Embedder and query encoding as the Serve deployment's."""

        overrides: dict | None = None  # set before the server starts

        def setup(self, device):
            from pardus.deployments.embedder.encoder import Embedder
            from pardus.deployments.settings import Settings

            self.embedder = Embedder(Settings(**self.overrides).embedder)

        def decode_request(self, request):
            from pardus.deployments.embedder.queries import EmbedQuery

            return EmbedQuery(text=request["text"])

        def predict(self, queries):
            from pardus.deployments.embedder.queries import encode_queries

            return encode_queries(self.embedder, list(queries))

        def encode_response(self, embedding):
            return {"vector": embedding.vector.tolist()}


def role_litserve(port: int, overrides: dict) -> None:
    """E: LitServe batching up to 32 queries, with the short wait its docs show."""
    # litserve 0.2.19 turns its MCP endpoint on when the `mcp` package is installed (vLLM
    # brings it) but needs `fastmcp` for it, and fails at start: off, we serve no MCP here.
    ls.server._MCP_AVAILABLE = False
    api = LitEmbedAPI(max_batch_size=32, batch_timeout=0.005, api_path="/embed")
    api.overrides = overrides
    server = ls.LitServer(api, accelerator="cpu", workers_per_device=1, timeout=60)
    server.run(host=HOST, port=port, log_level="warning", generate_client_file=False)


# == the load generator =========================================================================
@dataclass
class Server:
    name: str
    process: subprocess.Popen
    url: str
    log: Path

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds so far of this server's process tree, by process label."""
        import psutil

        out: dict[str, float] = defaultdict(float)
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return {}
        for proc in procs:
            try:
                times = proc.cpu_times()
                out[label(proc)] += times.user + times.system
            except psutil.Error:
                continue
        return out


def label(proc) -> str:
    """A short name for a server process: Ray's worker titles say which replica it is."""
    try:
        title = " ".join(proc.cmdline()) or proc.name()
    except Exception:  # gone meanwhile
        return "?"
    if title.startswith("ray::"):
        name = title.split()[0][5:]
        return name.split(".")[0]
    for known in ("raylet", "gcs_server", "haproxy", "milvus", "dashboard", "runtime_env",
                  "log_monitor", "monitor.py"):
        if known in title:
            return known
    return proc.name()


def spawn(name: str, args: list[str], env: dict, work: Path, pythonpath: str | None = None,
          cores: set[int] | None = None) -> Server:
    log = work / f"{name}.log"
    # Each server's Serve mode is its own: none inherited from this process.
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_")}, **env}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    port = args[args.index("--port") + 1]

    def pin() -> None:
        os.setsid()
        if cores:
            os.sched_setaffinity(0, cores)

    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *args],
                               cwd=work, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               preexec_fn=pin)
    return Server(name, process, f"http://{HOST}:{port}", log)


def stop(server: Server) -> None:
    """SIGTERM to the server's process group (Ray's processes included), SIGKILL after 60 s;
    then SIGKILL to any process of its tree still alive: Ray's HAProxy outlives a stopped
    Serve in a session of its own (seen here: it then holds ports 8404 and 9101)."""
    import psutil

    try:
        tree = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    try:
        os.killpg(server.process.pid, signal.SIGTERM)
        server.process.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(server.process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is gone already
        pass
    server.process.wait()
    for proc in tree:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass


async def wait_ready(client, url: str, server: Server, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited: see {server.log}")
        try:
            if (await client.get(url, timeout=5)).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(1)
    raise RuntimeError(f"{url} never became ready: see {server.log}")


def pictures(n: int, seed: int) -> list[bytes]:
    from pardus.ingest.samples import COLORS, PATTERNS, SHAPES, draw_product

    rng, out = random.Random(seed), []
    for _ in range(n):
        picture = draw_product(rng.choice(list(SHAPES)), rng.choice(list(COLORS)),
                               rng.choice(PATTERNS), seed=rng.randrange(10**6),
                               code=rng.randrange(4096))
        buffer = io.BytesIO()
        picture.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    hits: list[float] = field(default_factory=list)  # latencies of repeated queries (Zipf)
    errors: int = 0  # failed requests (open loop)

    def add(self, latencies, elapsed, cpu):
        self.latencies += latencies
        self.elapsed += elapsed
        for name, seconds in cpu.items():
            self.cpu[name] += seconds

    def pct(self, q: float, values=None) -> float:
        values = self.latencies if values is None else values
        return float(np.percentile(values, q)) * 1000 if values else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def cpu_ms(self) -> dict[str, float]:
        n = max(len(self.latencies), 1)
        return {name: 1000 * s / n for name, s in sorted(self.cpu.items(), key=lambda kv: -kv[1])}


class Arm:
    """One way to send a search (or an embedding) and the processes that serve it."""

    def __init__(self, name: str, call, servers: list[Server]):
        self.name, self.call, self.servers = name, call, servers
        self.errors = 0  # failed requests of open-loop runs

    def cpu(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for server in self.servers:
            for proc, seconds in server.cpu_by_process().items():
                out[f"{server.name}:{proc}"] += seconds
        import psutil

        me = psutil.Process().cpu_times()
        out["load generator (this process)"] = me.user + me.system
        return out


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


async def closed_loop(arm: Arm, requests: list, clients: int) -> tuple[list[float], float]:
    """`clients` callers, each sending its next request when its last one is answered."""
    indexed, elapsed = await closed_loop_indexed(arm, requests, clients)
    return [latency for latency, _ in indexed], elapsed


async def closed_loop_indexed(arm: Arm, requests: list, clients: int):
    """closed_loop's latencies with each one's request index."""
    pending, latencies = iter(enumerate(requests)), []

    async def client() -> None:
        for index, request in pending:  # one iterator shared by the clients
            start = time.perf_counter()
            await arm.call(*request)
            latencies.append((time.perf_counter() - start, index))

    start = time.perf_counter()
    await asyncio.gather(*[client() for _ in range(clients)])
    return latencies, time.perf_counter() - start


async def open_loop(arm: Arm, requests: list, rate: float, seed: int) -> tuple[list[float], float]:
    """Poisson arrivals at `rate`/s, whatever the answers' pace; latency from the arrival."""
    rng, latencies, tasks = random.Random(seed), [], []

    async def one(request, due: float) -> None:
        try:
            await arm.call(*request)
        except Exception:  # an overloaded server's refusal or reset: counted, not timed
            arm.errors += 1
            return
        latencies.append(time.perf_counter() - due)

    start = time.perf_counter()
    due = start
    for request in requests:
        due += rng.expovariate(rate)
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.ensure_future(one(request, due)))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - start


async def measure(arms: list[Arm], make_batch, rounds: int, run) -> dict[str, Tally]:
    """Every round runs every arm in turn (the machine's noise falls on all alike)."""
    tallies = {arm.name: Tally() for arm in arms}
    for round_ in range(rounds):
        for arm in arms:
            batch = make_batch(round_)
            before, failed = arm.cpu(), arm.errors
            latencies, elapsed = await run(arm, batch)
            tallies[arm.name].add(latencies, elapsed, delta(arm.cpu(), before))
            tallies[arm.name].errors += arm.errors - failed
    return tallies


# == the arms' calls ============================================================================
def search_over_http(client, prefix: str):
    async def call(text: str, image: bytes | None) -> None:
        files = {"image": ("q.jpg", image, "image/jpeg")} if image else None
        response = await client.post(f"{prefix}/v1/search", files=files, data={
            "text": text, "k": "6", "rerank": "false"})
        if response.status_code != 200:
            raise RuntimeError(f"{prefix}: HTTP {response.status_code}: {response.text[:200]}")
    return call


def embed_over_http(client, url: str):
    async def call(text: str, _image=None) -> None:
        response = await client.post(url, json={"text": text})
        if response.status_code != 200 or len(response.json()["vector"]) < 2:
            raise RuntimeError(f"{url}: HTTP {response.status_code}: {response.text[:200]}")
    return call


def in_process(overrides: dict):
    from pardus.deployments.settings import Settings
    from pardus.serve.factory import build_search_service, local_models
    from pardus.serve.search import Query

    settings = Settings(**overrides)
    service = build_search_service(settings, local_models(settings))

    async def call(text: str, image: bytes | None) -> None:
        await service.search(Query(text, image, 6, None, rerank=False))
    return call, service


# == report =====================================================================================
def table(title: str, tallies: dict[str, Tally], extra: dict | None = None):
    from rich.table import Table

    out = Table(title=title)
    for column in ("arm", "requests", "p50 ms", "p99 ms", "per s", *(extra or {})):
        out.add_column(column, justify="left" if column == "arm" else "right")
    for name, tally in tallies.items():
        cells = [f"{fn(name, tally)}" for fn in (extra or {}).values()]
        out.add_row(name, str(len(tally.latencies)), f"{tally.pct(50):.1f}",
                    f"{tally.pct(99):.1f}", f"{tally.rate:.1f}", *cells)
    return out


def cpu_table(title: str, tallies: dict[str, Tally]):
    from rich.table import Table

    out = Table(title=title)
    out.add_column("arm")
    out.add_column("CPU ms per request, by process (most first)", overflow="fold")
    out.add_column("total", justify="right")
    for name, tally in tallies.items():
        costs = tally.cpu_ms()
        shown = ", ".join(f"{proc} {ms:.1f}" for proc, ms in costs.items() if ms >= 0.05)
        out.add_row(name, shown, f"{sum(costs.values()):.1f}")
    return out


def verdict(ok: bool) -> str:
    return "[green]met[/]" if ok else "[red]not met[/]"


# == main =======================================================================================
def prepare(work: Path, items: int) -> dict:
    from pardus.deployments.settings import Settings
    from pardus.deployments.tiny.embedder import write_tiny_model
    from pardus.ingest.pipeline import ensure_ray, run_ingest
    from pardus.ingest.samples import write_sample_catalogue

    tiny = write_tiny_model(work / "tiny-model", seed=0)
    write_sample_catalogue(work / "catalogue", count=items)
    overrides = {
        "embedder": {"checkpoint": tiny["PARDUS_EMBEDDER__CHECKPOINT"],
                     "text_model": tiny["PARDUS_EMBEDDER__TEXT_MODEL"]},
        "milvus": {"uri": str(work / "pardus.db"), "collection": "bench", "index_type": "FLAT"},
        "reranker": {"enabled": False},
        "serving": {"image_root": str(work / "catalogue")},
        "ingest": {"report": str(work / "report.jsonl")},
    }
    import logging

    import ray

    logging.getLogger("ray").setLevel(logging.WARNING)  # Ray Data's progress lines
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray of this run only
    ensure_ray(local_cpus=4)
    try:
        summary = run_ingest(str(work / "catalogue" / "items.jsonl"), Settings(**overrides))
    finally:
        ray.shutdown()
    print(f"catalogue: {summary.indexed} items in the embedded Milvus (2.5 core)", flush=True)
    return overrides


def before_tree(work: Path, ref: str) -> str:
    """A worktree of `ref` and a folder that makes `pardus` import from it (PYTHONPATH)."""
    tree = work / "before"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), ref],
                   check=True, capture_output=True)
    package = work / "before-path" / "pardus"
    package.mkdir(parents=True)
    (package / "__init__.py").symlink_to(tree / "pardus" / "__init__.py")
    for name, folder in (("cli", "cli"), ("deployments", "deployments"),
                         ("evaluation", "evaluation"), ("ingest", "ingest"), ("serve", "serve")):
        (package / name).symlink_to(tree / folder)
    return str(package.parent)


def zipf_log(n: int, distinct: int, seed: int) -> list[int]:
    ranks = np.arange(1, distinct + 1)
    weights = ranks ** -1.1
    rng = np.random.default_rng(seed)
    return list(rng.choice(ranks, size=n, p=weights / weights.sum()))


async def run(args, work: Path, overrides: dict, servers: dict[str, Server]) -> dict:
    import httpx
    from rich.console import Console

    console = Console(width=max(Console().width, 160))
    results: dict = {}
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        for name, server in servers.items():
            await wait_ready(client, f"{server.url}/{'health' if name == 'E' else 'readyz'}",
                             server)
        side = servers["DH"]  # the side apps run in the cluster Kubernetes runs like
        for prefix in ("nocache", "b1", "results"):
            await wait_ready(client, f"{side.url}/{prefix}/readyz", side)
        local_call, service = in_process(overrides)
        arms = {
            "A in process": Arm("A in process", local_call, []),
            "B plain uvicorn": Arm("B plain uvicorn", search_over_http(client, servers["B"].url),
                                   [servers["B"]]),
            "C Serve before": Arm("C Serve before", search_over_http(client, servers["C"].url),
                                  [servers["C"]]),
            "D Serve after": Arm("D Serve after", search_over_http(client, servers["D"].url),
                                 [servers["D"]]),
            "DH Serve after, HAProxy": Arm("DH Serve after, HAProxy", search_over_http(
                client, servers["DH"].url), [servers["DH"]]),
        }
        images = pictures(args.pictures, seed=7)
        counter = iter(range(10**9))

        def composed(n: int):
            def make(_round: int) -> list:
                return [(f"{TEXTS[i % len(TEXTS)]} {next(counter)}",
                         images[next(counter) % len(images)]) for i in range(n)]
            return make

        for arm in arms.values():  # warm-up: connections, caches of the code paths
            await closed_loop(arm, composed(16)(0), 4)

        # -- closed loop ----------------------------------------------------------------------
        closed = await closed_levels(
            list(arms.values()), composed, LEVELS, args, console,
            "closed loop, {} client(s): a text and a fresh picture per search, k=6, no rerank")
        console.print(cpu_table("CPU per search at 8 clients (server processes; arm A and the "
                                "load generator share this process)", closed[8]))
        b = closed[1]["B plain uvicorn"].pct(50)
        overheads = {name: closed[1][name].pct(50) - b for name in arms if name.startswith(
            ("C", "D"))}
        results["closed"] = {c: {name: {"p50": t.pct(50), "p99": t.pct(99), "rate": t.rate,
                                        "cpu_ms": t.cpu_ms()} for name, t in tallies.items()}
                             for c, tallies in closed.items()}

        # -- open loop sweep -------------------------------------------------------------------
        sweep, best = await rate_sweep(list(arms.values()), composed, args.rates, args.sweep_s,
                                       seed=1)
        console.print(sweep_table(sweep, args.rates))
        results["sweep"] = {name: {r: {"p50": t.pct(50), "p99": t.pct(99), "rate": t.rate}
                                   for r, t in by.items()} for name, by in sweep.items()}

        # -- batching gain ---------------------------------------------------------------------
        def texts(n: int):
            return lambda _round: [(f"{TEXTS[i % len(TEXTS)]} {next(counter)}", None)
                                   for i in range(n)]
        batching_arms = [
            Arm("DH max_batch_size 32", search_over_http(client, f"{side.url}/nocache"),
                [side]),
            Arm("DH max_batch_size 1", search_over_http(client, f"{side.url}/b1"), [side]),
            Arm("C max_batch_size 32", arms["C Serve before"].call, [servers["C"]]),
        ]
        batching = await measure(batching_arms, texts(args.requests), args.rounds,
                                 lambda arm, batch: closed_loop(arm, batch, 32))
        alone = model_alone(overrides)
        console.print(table("batching: 32 clients, text-only searches (distinct texts)",
                            batching))
        http_gain = (batching["DH max_batch_size 32"].rate
                     / batching["DH max_batch_size 1"].rate)
        model_gain = alone[32] / alone[1]
        console.print(f"the model alone (this process, text batches): batch 32 "
                      f"{alone[32]:.0f}/s vs batch 1 {alone[1]:.0f}/s = {model_gain:.2f}x; over "
                      f"HTTP through Serve: {http_gain:.2f}x = {http_gain / model_gain:.0%} of "
                      "it", soft_wrap=True)

        # -- the query cache ---------------------------------------------------------------------
        log = zipf_log(args.zipf_requests, 10_000, seed=3)
        zipf_arms = [Arm("DH no cache", batching_arms[0].call, [side]),
                     Arm("DH query cache", arms["DH Serve after, HAProxy"].call, [side]),
                     Arm("DH query + result cache", search_over_http(
                         client, f"{side.url}/results"), [side])]
        seen: dict[str, set] = {arm.name: set() for arm in zipf_arms}
        zipf = {arm.name: Tally() for arm in zipf_arms}
        chunk = len(log) // args.rounds
        for round_ in range(args.rounds):
            part = log[round_ * chunk:(round_ + 1) * chunk]
            for arm in zipf_arms:
                hits = [rank in seen[arm.name] for rank in part]
                seen[arm.name].update(part)
                latencies, elapsed = await closed_loop_indexed(
                    arm, [(f"zipf query {rank}", None) for rank in part], 1)
                zipf[arm.name].add([lat for lat, _ in latencies], elapsed, {})
                zipf[arm.name].hits += [lat for lat, i in latencies if hits[i]]
        console.print(table(f"Zipf(1.1) log over 10k distinct text queries, {len(log)} "
                            "searches, 1 client", zipf, {
                                "repeats": lambda n, t: f"{len(t.hits)}",
                                "repeat p50 ms": lambda n, t: f"{t.pct(50, t.hits):.1f}"}))

        # -- embed-only against the peer ---------------------------------------------------------
        peer_arms = [Arm("DH Serve embed-only", embed_over_http(client, f"{side.url}/embed"),
                         [side]),
                     Arm("E LitServe", embed_over_http(client, f"{servers['E'].url}/embed"),
                         [servers["E"]])]
        for arm in peer_arms:
            await closed_loop(arm, texts(16)(0), 4)
        peers = await closed_levels(peer_arms, texts, (1, 8, 32), args, console,
                                    "embed-only, {} client(s), distinct texts")
        console.print(cpu_table("CPU per embedding at 32 clients", peers[32]))
        peer_sweep, peer_best = await rate_sweep(peer_arms, texts, args.embed_rates,
                                                 args.sweep_s, seed=2)
        console.print(sweep_table(peer_sweep, args.embed_rates))
        await service.store.close()

    # -- goals ---------------------------------------------------------------------------------
    c16, d16 = closed[16]["C Serve before"].rate, closed[16]["D Serve after"].rate
    dh16 = closed[16]["DH Serve after, HAProxy"].rate
    off, query_only, both = (zipf["DH no cache"], zipf["DH query cache"],
                             zipf["DH query + result cache"])
    console.rule("goals (issue 22)")
    for name, overhead in overheads.items():
        console.print(f"Serve overhead at 1 client, p50 over B ({b:.1f} ms): {name} "
                      f"{overhead:+.1f} ms; goal <= 5 ms: {verdict(overhead <= 5)}")
    console.print(f"HTTP batching gain at 32 clients: {http_gain:.2f}x vs the model's "
                  f"{model_gain:.2f}x = {http_gain / model_gain:.0%}; goal >= 70 %: "
                  f"{verdict(http_gain / model_gain >= 0.7)}")
    console.print(f"16 clients: C {c16:.1f}/s, D {d16:.1f}/s ({d16 / c16:.2f}x), DH "
                  f"{dh16:.1f}/s ({dh16 / c16:.2f}x); goal >= 2x: "
                  f"{verdict(max(d16, dh16) >= 2 * c16)}")
    ours, peer = peer_best["DH Serve embed-only"], peer_best["E LitServe"]
    console.print(f"embed-only, most requests/s at p99 <= {P99_GOAL_MS:.0f} ms: Serve "
                  f"{ours:.0f}, LitServe {peer:.0f}; at 32 clients "
                  f"{peers[32]['DH Serve embed-only'].rate:.0f}/s vs "
                  f"{peers[32]['E LitServe'].rate:.0f}/s; goal >= the peer's: "
                  f"{verdict(ours >= peer)}")
    for name, tally in (("query cache", query_only), ("query + result cache", both)):
        hit = tally.pct(50, tally.hits)
        console.print(f"{name}: repeats p50 {hit:.1f} ms (goal <= 10 ms: {verdict(hit <= 10)})"
                      f"; overall p50 {tally.pct(50):.1f} vs {off.pct(50):.1f} ms with none = "
                      f"{off.pct(50) / tally.pct(50):.2f}x (goal >= 2x: "
                      f"{verdict(off.pct(50) >= 2 * tally.pct(50))})")
    console.print(f"open loop, most searches/s at p99 <= {P99_GOAL_MS:.0f} ms: " + ", ".join(
        f"{name} {rate:.0f}" for name, rate in best.items()), soft_wrap=True)
    results.update(overheads=overheads, http_gain=http_gain, model_gain=model_gain,
                   rate16={"C": c16, "D": d16, "DH": dh16}, peer_best=peer_best, best=best,
                   zipf={name: {"p50": t.pct(50), "repeat_p50": t.pct(50, t.hits)}
                         for name, t in zipf.items()})
    return results


async def closed_levels(arms: list[Arm], make, levels, args, console,
                        title: str) -> dict[int, dict[str, Tally]]:
    """Closed-loop runs at each number of clients (a quarter of the requests for one client),
    each level's table printed as it ends. make(n) -> a batch maker of n requests."""
    out = {}
    for clients in levels:
        n = max(args.requests // 4, 12) if clients == 1 else args.requests
        out[clients] = await measure(arms, make(n), args.rounds,
                                     lambda arm, batch, c=clients: closed_loop(arm, batch, c))
        console.print(table(title.format(clients), out[clients]))
    return out


async def rate_sweep(arms: list[Arm], make, rates, seconds: float, seed: int):
    """Open-loop runs at each offered rate (`seconds` of requests each); the tallies by arm
    and rate, and each arm's highest rate served (0 if none)."""
    sweep: dict[str, dict[float, Tally]] = defaultdict(dict)
    for rate in rates:
        tallies = await measure(arms, make(max(int(rate * seconds), 10)), 1,
                                lambda arm, batch, r=rate: open_loop(arm, batch, r, seed=seed))
        for name, tally in tallies.items():
            sweep[name][rate] = tally
    best = {name: max([r for r, t in by_rate.items() if served(t)], default=0.0)
            for name, by_rate in sweep.items()}
    return sweep, best


def served(tally: Tally) -> bool:
    """An offered rate was served: every request answered, p99 within the goal."""
    return not tally.errors and tally.pct(99) <= P99_GOAL_MS


def sweep_table(sweep: dict[str, dict[float, Tally]], rates: list[float]):
    from rich.table import Table

    out = Table(title=f"open loop (Poisson arrivals): p50 / p99 ms at each offered rate; "
                      f"* = all answered, p99 <= {P99_GOAL_MS:.0f} ms")
    out.add_column("arm")
    for rate in rates:
        out.add_column(f"{rate:g}/s", justify="right")
    for name, by_rate in sweep.items():
        out.add_row(name, *[f"{t.pct(50):.0f} / {t.pct(99):.0f}"
                            f"{'*' if served(t) else ''}"
                            f"{f' ({t.errors} failed)' if t.errors else ''}"
                            for t in (by_rate[r] for r in rates)])
    return out


def model_alone(overrides: dict, seconds: float = 3.0) -> dict[int, float]:
    """Texts per second through encode_texts at batch 32 and 1 in this process."""
    from pardus.deployments.embedder.encoder import Embedder
    from pardus.deployments.settings import Settings

    embedder = Embedder(Settings(**overrides).embedder)
    rates = {}
    for size in (32, 1, 32, 1):
        texts = [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(size)]
        embedder.encode_texts(texts)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            embedder.encode_texts(texts)
            done += size
        rates[size] = max(rates.get(size, 0.0), done / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["bench", "plain", "serve", "litserve"],
                        default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--before", default=BEFORE, help="the commit arm C runs")
    parser.add_argument("--requests", type=int, default=256, help="per closed-loop run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 30, 40, 60])
    parser.add_argument("--embed-rates", type=float, nargs="+", default=[50, 100, 200, 300])
    parser.add_argument("--sweep-s", type=float, default=6.0, help="seconds per offered rate")
    parser.add_argument("--zipf-requests", type=int, default=3000)
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--items", type=int, default=200, help="catalogue size")
    parser.add_argument("--base-port", type=int, default=8171)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rates")
    args = parser.parse_args()
    if args.role != "bench":
        overrides = json.loads(Path(args.settings).read_text())
        {"plain": lambda: role_plain(args.port, overrides),
         "serve": lambda: role_serve(args.port, overrides, args.extras),
         "litserve": lambda: role_litserve(args.port, overrides)}[args.role]()
        return
    if args.quick:
        args.requests, args.rounds, args.zipf_requests = 128, 2, 1600
        args.rates, args.embed_rates, args.sweep_s = [10, 20, 30, 45], [50, 100, 200], 4.0
    bench(args)


def bench(args) -> None:
    from pardus.deployments.catalogue import lite_server

    # SIGTERM as Ctrl-C: the servers, Milvus and the worktree are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    cpus = sorted(os.sched_getaffinity(0))
    server_cores = None
    if len(cpus) >= 4:  # the load generator on the last core, the servers on the rest
        server_cores = set(cpus[:-1])
        os.sched_setaffinity(0, {cpus[-1]})
    where = f"apart on core {cpus[-1]}" if server_cores else "sharing them with the servers"
    print(f"{len(cpus)} cores; the load generator {where}. Figures are noisy: compare rows of "
          "one run.", flush=True)
    with tempfile.TemporaryDirectory(prefix="serve-throughput-") as folder:
        work = Path(folder)
        servers: dict[str, Server] = {}
        try:
            overrides = prepare(work, args.items)
            settings_file = work / "settings.json"
            settings_file.write_text(json.dumps(overrides))
            before = before_tree(work, args.before)
            common = ["--settings", str(settings_file)]
            ray_env = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
            port = iter(range(args.base_port, args.base_port + 10))
            plan = [("B", ["--role", "plain"], {}, None),
                    ("C", ["--role", "serve"], ray_env, before),
                    ("D", ["--role", "serve"], ray_env, None),
                    ("DH", ["--role", "serve", "--extras"],
                     {**ray_env, "RAY_SERVE_ENABLE_HA_PROXY": "1"}, None),
                    ("E", ["--role", "litserve"], {}, None)]
            for name, role, env, path in plan:  # one at a time: start-ups compete for cores
                servers[name] = spawn(name, [*role, "--port", str(next(port)), *common], env,
                                      work, path, server_cores)
                print(f"starting {name} (log {servers[name].log})", flush=True)
                asyncio.run(wait_one(servers[name], name))
            results = asyncio.run(run(args, work, overrides, servers))
            out = REPO / "data" / "benchmarks" / "serve_throughput.json"  # not committed
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1, default=float))
            print(f"figures written to {out}")
        finally:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up runs to its end
            for server in servers.values():
                stop(server)
            lite_server.stop(str(work / "pardus.db"))
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(work / "before")], capture_output=True)


async def wait_one(server: Server, name: str, timeout: float = 600) -> None:
    """Until the server answers (Serve roles: until their apps are all deployed)."""
    import httpx

    async with httpx.AsyncClient() as client:
        await wait_ready(client, f"{server.url}/{'health' if name == 'E' else 'readyz'}",
                         server)
    deadline = time.monotonic() + timeout
    while name in ("C", "D", "DH") and "READY" not in server.log.read_text():
        if time.monotonic() > deadline or server.process.poll() is not None:
            raise RuntimeError(f"{name} did not finish deploying: see {server.log}")
        await asyncio.sleep(1)


if __name__ == "__main__":
    main()
