"""`pardus serve`, `pardus search` and `pardus demo`: the service side of the command line."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from pardus.cli import stopping
from pardus.cli.catalogue import console, err_console
from pardus.deployments.catalogue.filters import Refinements, SearchFilters
from pardus.deployments.names import RERANK_NOTES, FacetName, Mode, RerankOutcome, Sort
from pardus.deployments.settings import Weights, get_settings
from pardus.serve.client import PardusClient
from pardus.serve.schemas import SearchRequest, SearchResponse

TINY_NOTE = ("random weights: every stage runs for real, but rankings and reasons are "
             "meaningless")


# -- weights ------------------------------------------------------------------------------------
def embedder_overrides(workdir: Path, allow_tiny: bool) -> dict[str, Any]:
    """{} when the configured Visualized BGE weights are at hand; else a tiny model (if
    allowed, said loudly) or a clear exit."""
    # Deferred: the model code (torch), which a search over HTTP does not need.
    from pardus.deployments.embedder.checkpoint import WeightsNotFound, resolve
    from pardus.deployments.tiny.embedder import write_tiny_model

    try:
        resolve(get_settings().embedder)
        return {}
    except WeightsNotFound as exc:
        err_console.print(f"[yellow]{exc}[/]", soft_wrap=True)
        if not allow_tiny:
            raise typer.Exit(2) from None
    tiny = workdir / "tiny-model"
    err_console.print(f"[yellow]Using a tiny Visualized BGE written to {tiny} ({TINY_NOTE}).[/]",
                      soft_wrap=True)
    env = write_tiny_model(tiny)
    return {"checkpoint": env["PARDUS_EMBEDDER__CHECKPOINT"],
            "text_model": env["PARDUS_EMBEDDER__TEXT_MODEL"], "vision_config": None}


def reranker_missing(model: str) -> str | None:
    """None when vLLM can load `model` (a local folder, the hub cache, or a reachable hub);
    else what is wrong and what to do."""
    # Deferred: the model code (torch).
    from huggingface_hub import constants, try_to_load_from_cache

    from pardus.deployments.embedder.checkpoint import unreachable_hub

    if Path(model).is_dir():
        return None if (Path(model) / "config.json").exists() else f"{model} has no config.json"
    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    host = httpx.URL(constants.ENDPOINT).host
    if not constants.HF_HUB_OFFLINE and unreachable_hub() is None:
        return None
    return (f"the reranker {model!r} is not on this machine and the hub ({host}) is "
            "unreachable: download it (hf download "
            "microsoft/Phi-3-vision-128k-instruct --local-dir /models/phi3v) and set "
            "PARDUS_RERANKER__MODEL=/models/phi3v, or write a tiny random-weight one with "
            "`pardus models tiny-reranker DIR`")


def reranker_overrides(workdir: Path, enabled: bool, allow_tiny: bool) -> dict[str, Any]:
    # Deferred: torch, for the tiny model only.
    from pardus.deployments.tiny.phi3v import write_tiny_phi3v

    configured = get_settings().reranker
    if not enabled or not configured.enabled:
        return {"enabled": False}
    problem = reranker_missing(configured.model)
    if problem is None:
        return {}
    if not allow_tiny:
        err_console.print(f"[yellow]{problem}. Serving without reranking (answers are flagged "
                          "reranked=false).[/]", soft_wrap=True)
        return {"enabled": False}
    path = write_tiny_phi3v(workdir / "tiny-reranker")
    err_console.print(f"[yellow]{problem}.\nUsing a tiny Phi-3-Vision written to {path} "
                      f"({TINY_NOTE}).[/]", soft_wrap=True)
    return {"model": str(path), "dtype": "float32", "max_model_len": 4096, "num_crops": 1,
            "enforce_eager": True, "grid_cell": 96, "max_tokens": 160, "max_candidates": 8,
            "timeout_s": 120}


# -- running the app ------------------------------------------------------------------------------
def free_port(host: str, wanted: int) -> int:
    with socket.socket() as probe:
        if probe.connect_ex((host, wanted)) != 0:
            return wanted
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def ensure_ray() -> None:
    """Ray for the CLI: at least 4 logical CPUs when local, so the three deployments and an
    ingest fit on a small machine."""
    # Deferred: Ray, which a search over HTTP does not need.
    from pardus.ingest.pipeline import ensure_ray as ensure
    from pardus.serve.ray_env import apply_serve_environment

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    apply_serve_environment()  # Serve's throughput mode, before Ray starts
    try:
        ensure(local_cpus=max(4, os.cpu_count() or 1))
    except SystemExit as exc:  # ray.init's own SIGTERM handler, while Ray started
        if exc.code != signal.SIGTERM:
            raise
        raise KeyboardInterrupt from None
    finally:
        stopping.reinstall()  # ours again: Ray's exits without our clean-up


def start_service(overrides: dict[str, Any], host: str, port: int) -> str:
    """Start Serve on host:port and the app on this process's Ray; wait until ready."""
    # Deferred: Ray Serve and the app (the model code).
    from ray import serve

    from pardus.serve.app import build_app

    with console.status("starting Ray and the Pardus app (first start loads the models)"):
        ensure_ray()
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app({"settings": overrides}), name="pardus", route_prefix="/")
        url = f"http://{host}:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            stopping.reinstall()  # and the stop, should a library have swallowed it
            try:
                if httpx.get(f"{url}/readyz", timeout=10).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(1)
    raise RuntimeError(f"the service at {url} did not become ready: see /readyz")


def stop_service() -> None:
    """Serve and Ray down; a signal meanwhile does not cut this short."""
    # Deferred: Ray.
    import ray
    from ray import serve

    with stopping.cleaning_up():
        serve.shutdown()
        ray.shutdown()


def wait_for_interrupt(url: str, log_path: Path) -> None:
    console.print(f"[green]Pardus is serving at {url}[/]  (web page {url}/, API docs "
                  f"{url}/docs). Ctrl-C stops it. Ray's and the libraries' logs: {log_path}",
                  soft_wrap=True)
    while True:
        time.sleep(3600)


# -- searching ---------------------------------------------------------------------------
def print_results(response: SearchResponse, title: str, next_command: str = "") -> None:
    """The page as a table, the facets, how it was searched and how to get the next page."""
    table = Table(title=title)
    for name in ("rank", "retr.", "score", "id", "title", "category", "price", "stock", "pic."):
        table.add_column(name, no_wrap=name == "id", overflow="ellipsis",
                         ratio=1 if name in ("title", "category") else None,
                         justify="right" if name == "price" else "left")
    for r in response.results:
        table.add_row(str(r.rank), str(r.retrieval_rank), f"{r.score:.3f}", r.id, r.title,
                      r.category, "-" if r.price is None else f"{r.price:.2f}",
                      "yes" if r.in_stock else "no", f"{r.image_index + 1}/{r.image_count}")
    console.print(table)
    if any(r.debug for r in response.results):
        scores = Table(title="how the order came about")
        for name in ("id", "relevance", "boost", "final"):
            scores.add_column(name, justify="left" if name == "id" else "right")
        for r in response.results:
            scores.add_row(r.id, f"{r.debug.relevance:.3f}", f"{r.debug.boost:+.3f}",
                           f"{r.debug.final:.3f}")
        console.print(scores)
    for facet in response.facets:
        values = ", ".join(f"{'[bold]' if v.selected else ''}{v.value}"
                           f"{'[/bold]' if v.selected else ''} ({v.count})" for v in facet.values)
        console.print(f"{facet.name}: {values or '-'}", soft_wrap=True)
    fused = f", {response.fusion} fusion" if response.fusion else ""
    shown = response.results[-1].retrieval_rank if response.results else 0
    console.print(f"{response.kind} query, {response.mode} search{fused}, sorted by "
                  f"{response.sort}: {shown} of {response.total} relevant products (of the "
                  f"top {response.window} matches); prices in {response.currency}",
                  soft_wrap=True)
    outcome = response.rerank.outcome
    if outcome is RerankOutcome.RERANKED:
        console.print(f"reranked; why #1 fits: {response.reason or '(no reason given)'}",
                      soft_wrap=True)
    else:
        console.print(f"[yellow]{RERANK_NOTES[outcome]}[/]", soft_wrap=True)
    stages = ", ".join(f"{k} {v:.0f} ms" for k, v in response.timings_ms.items())
    console.print(f"timings: {stages}")
    if response.next and next_command:
        console.print(f"next page: {next_command} --cursor {response.next}", soft_wrap=True)


@dataclass
class SearchArgs:
    """A search as the command line asks it, over HTTP or in process alike."""

    text: str = ""
    image: Path | None = None
    k: int = 10
    rerank: bool = True
    filters: SearchFilters | None = None
    mode: Mode | None = None
    weights: Weights | None = None
    sort: Sort = Sort.RELEVANCE
    facets: tuple[FacetName, ...] = ()
    refine: Refinements | None = None
    cursor: str | None = None
    debug: bool = False

    def picture(self) -> bytes | None:
        return self.image.read_bytes() if self.image else None


def search_over_http(url: str, args: SearchArgs, api_key: str | None) -> SearchResponse:
    """POST /v1/search of the service at url; its failures as domain errors."""
    image = args.picture()
    request = SearchRequest(text=args.text, k=args.k, rerank=args.rerank, filters=args.filters,
                            mode=args.mode, weights=args.weights, sort=args.sort,
                            facets=list(args.facets), refine=args.refine, cursor=args.cursor,
                            debug=args.debug,
                            image=base64.b64encode(image).decode() if image else None)

    async def run() -> SearchResponse:
        async with PardusClient(url, api_key) as client:
            return await client.search(request)

    return asyncio.run(run())


def similar_over_http(url: str, item_id: str, args: SearchArgs,
                      api_key: str | None) -> SearchResponse:
    async def run() -> SearchResponse:
        async with PardusClient(url, api_key) as client:
            return await client.similar(item_id, args.k, args.filters, args.cursor, args.debug)

    return asyncio.run(run())


def _in_process(call) -> SearchResponse:
    """call(service) with the SearchService built here (a local embedder and store, no
    reranker, no Ray Serve)."""
    # Here, not at the top: the model code costs seconds to import, which a search over HTTP
    # does not need.
    from pardus.serve.factory import build_search_service, local_models

    settings = get_settings()
    service = build_search_service(settings, local_models(settings))

    async def run() -> SearchResponse:
        try:
            return await call(service)
        finally:
            await service.store.close()

    return asyncio.run(run())


def _query(args: SearchArgs, rerank: bool):
    # Here: serve.search carries the model code's imports (see _in_process).
    from pardus.serve.search import Query

    return Query(args.text, args.picture(), args.k, args.filters, rerank=rerank, mode=args.mode,
                 weights=args.weights, sort=args.sort, facets=args.facets, refine=args.refine,
                 cursor=args.cursor, debug=args.debug)


def search_in_process(args: SearchArgs) -> SearchResponse:
    """The same SearchService without Ray Serve: a local embedder and store, no reranker."""
    query = _query(args, rerank=False)
    return _in_process(lambda service: service.search(query))


def similar_in_process(item_id: str, args: SearchArgs) -> SearchResponse:
    query = _query(args, rerank=False)
    return _in_process(lambda service: service.similar(item_id, query))
