"""The `pardus` command line."""

from __future__ import annotations

import logging
import shlex
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from pardus.cli.catalogue import console, err_console, ingest, print_summary, store_app
from pardus.cli.evaluate import evaluate
from pardus.cli.k8s import k8s_app
from pardus.deployments.names import FacetName, Mode, Sort
from pardus.serve.ray_env import apply_loopback_environment

app = typer.Typer(help="Pardus: multimodal semantic product search.", no_args_is_help=True)



models_app = typer.Typer(help="Model files: tiny random-weight models for tests and demos.")
app.add_typer(models_app, name="models")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    # Before any command imports Ray: a Ray this command starts listens on loopback only.
    apply_loopback_environment()
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print the Pardus version."""
    console.print(f"pardus {package_version('pardus')}")


@models_app.command("tiny")
def models_tiny(
    folder: Annotated[Path, typer.Argument(help="Folder to write the model into.")],
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
    variant: Annotated[
        str, typer.Option(help="base (English, bge-base) or m3 (multilingual, bge-m3).")
    ] = "base",
    full_size: Annotated[
        bool, typer.Option(help="The real architecture's sizes (196M parameters), for benchmarks.")
    ] = False,
) -> None:
    """Write a tiny random-weight Visualized BGE in the official formats (rankings meaningless)."""
    # Deferred: torch and transformers, for this command only (pardus --help stays instant).
    from pardus.deployments.tiny.embedder import write_tiny_model

    try:
        with console.status(f"writing random-weight model to {folder}"):
            env = write_tiny_model(folder, seed=seed, full_size=full_size, variant=variant)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"[green]tiny model written to {folder}[/] (random weights: rankings are meaningless)")
    console.print("Use it with:")
    for key, value in env.items():
        typer.echo(f"export {key}={value}")  # plain, unwrapped: meant to be copied


@models_app.command("tiny-reranker")
def models_tiny_reranker(
    folder: Annotated[Path, typer.Argument(help="Folder to write the model into.")],
    seed: Annotated[int, typer.Option(help="Random seed of the weights.")] = 0,
    full_size: Annotated[bool, typer.Option(
        help="The real model's sizes without weights: run with PARDUS_RERANKER__LOAD_FORMAT=dummy.")
    ] = False,
) -> None:
    """Write a tiny random-weight Phi-3-Vision (official format) that vLLM loads (answers meaningless)."""
    # Deferred: torch and safetensors, for this command only.
    from pardus.deployments.tiny.phi3v import write_tiny_phi3v

    with console.status(f"writing Phi-3-Vision to {folder}"):
        path = write_tiny_phi3v(folder, seed=seed, full_size=full_size)
    console.print(f"[green]Phi-3-Vision written to {path}[/] "
                  f"({'no weights: load_format dummy' if full_size else 'random weights'})")
    typer.echo(f"export PARDUS_RERANKER__MODEL={path.resolve()}")
    if full_size:
        typer.echo("export PARDUS_RERANKER__LOAD_FORMAT=dummy")


@app.command()
def embed(
    text: Annotated[Optional[list[str]], typer.Option("--text", "-t", help="A text (repeatable).")] = None,
    image: Annotated[Optional[list[Path]], typer.Option("--image", "-i", help="An image (repeatable).")] = None,
    query: Annotated[Optional[str], typer.Option(help="Text to pair with each image.")] = None,
) -> None:
    """Embed texts and images with the configured model and print their cosine similarities."""
    # Deferred: the model code (torch), for this command only.
    import numpy as np

    from pardus.deployments.embedder.checkpoint import WeightsNotFound
    from pardus.deployments.embedder.encoder import Embedder
    from pardus.deployments.settings import get_settings

    texts, images = list(text or []), list(image or [])
    if not texts and not images:
        raise typer.BadParameter("give at least one --text or --image")
    try:
        with console.status("loading Visualized BGE"):
            embedder = Embedder(get_settings().embedder)
    except WeightsNotFound as exc:
        err_console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    labels, rows = [], []
    if texts:
        labels += [f"text: {t}" for t in texts]
        rows.append(embedder.encode_texts(texts).vectors)
    if images:
        result = embedder.encode_pairs(images, [query or ""] * len(images))
        for path, err in zip(images, result.errors):
            if err is not None:
                err_console.print(f"[yellow]skipped {path}: {err.message}[/]", soft_wrap=True)
        suffix = f" + {query!r}" if query else ""
        labels += [f"image: {p.name}{suffix}" for p, ok in zip(images, result.ok) if ok]
        rows.append(result.vectors[result.ok])
    if not labels:
        err_console.print("[red]nothing to compare: every input failed[/]")
        raise typer.Exit(1)
    vectors = np.concatenate(rows)
    table = Table(title=f"cosine similarity ({embedder.dim}-d, {embedder.device}, {embedder.dtype})")
    table.add_column("")
    for i in range(len(labels)):
        table.add_column(str(i), overflow="fold")  # a narrow terminal wraps figures, never cuts
    for i, label in enumerate(labels):
        table.add_row(f"{i} {label}", *[f"{v:.3f}" for v in vectors @ vectors[i]])
    console.print(table)


def _filters(category: list[str] | None, price_min: float | None, price_max: float | None):
    """The filter options as SearchFilters (None: none given); a bad one exits 1, saying why."""
    # Here, not at the top: `pardus --help` and the other commands need none of it.
    from pardus.deployments.catalogue.filters import FilterError, parse_filters

    filters = {"categories": category or None, "price_min": price_min, "price_max": price_max}
    try:
        return parse_filters({k: v for k, v in filters.items() if v is not None} or None)
    except FilterError as exc:
        err_console.print(f"[red]{exc.message}[/]", soft_wrap=True)
        raise typer.Exit(1) from None


@app.command("serve")
def serve_command(
    host: Annotated[Optional[str], typer.Option(help="Interface to bind (PARDUS_SERVING__HOST).")] = None,
    port: Annotated[Optional[int], typer.Option(help="HTTP port (PARDUS_SERVING__PORT).")] = None,
    rerank: Annotated[bool, typer.Option(help="Run the vLLM reranker.")] = True,
    tiny: Annotated[bool, typer.Option(
        help="Use tiny random-weight models where real weights are missing (rankings meaningless)."
    )] = False,
    workdir: Annotated[Path, typer.Option(help="Where tiny models are written.")] = Path("data/serve"),
) -> None:
    """Start a local Ray and the Pardus app (ingress, embedder, reranker) on the configured store."""
    # Deferred: Ray, Serve and the model code, for this command only.
    from pardus.cli.stopping import stops_cleanly

    with stops_cleanly(err_console.print):  # from the start: nothing may stop us half-way
        try:
            _serve(host, port, rerank, tiny, workdir)
        except KeyboardInterrupt:  # SIGTERM or Ctrl-C: how a server ends, so a success
            console.print("stopped")


def _serve(host: str | None, port: int | None, rerank: bool, tiny: bool, workdir: Path) -> None:
    # Deferred: Ray, Serve and the model code, for this command only.
    from pardus.cli.logs import library_logs
    from pardus.cli.service import (
        embedder_overrides,
        reranker_overrides,
        start_service,
        stop_service,
        wait_for_interrupt,
    )
    from pardus.deployments.catalogue.engines import start_shared_server
    from pardus.deployments.catalogue.lite_server import LiteServerError
    from pardus.deployments.settings import get_settings

    settings = get_settings()
    host = host or settings.serving.host
    exposed = settings.serving.model_copy(update={"host": host}).exposure_warning()
    if exposed:
        err_console.print(f"[yellow]Warning: {exposed}[/]", soft_wrap=True)
    overrides = {"embedder": embedder_overrides(workdir, allow_tiny=tiny),
                 "reranker": reranker_overrides(workdir, rerank, allow_tiny=tiny)}
    try:  # here, not in a replica: Ray ends a worker's child processes with the worker
        start_shared_server(settings.milvus)
    except LiteServerError as exc:
        err_console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    with library_logs(settings.log_dir, "serve", (console, err_console)) as log_path:
        try:
            url = start_service(overrides, host, port or settings.serving.port)
            wait_for_interrupt(url, log_path)
        finally:
            stop_service()


def _next_command(ctx: typer.Context) -> str:
    """This command again, as given but for its cursor (and key): what to run for the next
    page, rebuilt from the parsed parameters."""
    words = ["pardus", *ctx.command_path.split()[1:]]  # as users call it (tests run "root")
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        positional = param.param_type_name == "argument"
        if param.name in ("cursor", "api_key") or value in (None, [], ()) or (
                value == param.default and not positional):
            continue
        if positional:
            words.append(str(value))
        elif isinstance(value, bool):
            words.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            for one in value if isinstance(value, (list, tuple)) else [value]:
                words += [param.opts[0], str(one)]
    return shlex.join(words)


def _refinements(values: list[str] | None):
    """--refine facet=value (repeatable) -> Refinements; BadParameter names what is wrong."""
    # Deferred: pydantic and the catalogue code.
    from pardus.deployments.catalogue.filters import Refinements

    picked: dict[str, list[str]] = {}
    for value in values or []:
        name, _, chosen = value.partition("=")
        if name not in [facet.value for facet in FacetName] or not chosen:
            raise typer.BadParameter(f"{value!r}: use FACET=VALUE with FACET one of "
                                     f"{', '.join(f.value for f in FacetName)} (e.g. "
                                     "brand=Korvex, price=25-50)", param_hint="--refine")
        picked.setdefault(name, []).append(chosen)
    return Refinements(**picked) if picked else None


def _show(ctx: typer.Context, ask, in_process: bool, title: str) -> None:
    """Run a search (ask(in_process)), print the page, exit 1 or 2 with the reason."""
    # Deferred: the service code.
    from pardus.cli.logs import library_logs
    from pardus.cli.service import print_results
    from pardus.deployments.errors import PardusError
    from pardus.deployments.settings import get_settings
    from pardus.serve.client import ServiceUnreachable

    try:
        if in_process:
            with library_logs(get_settings().log_dir, "search", (console, err_console)):
                response = ask(True)
        else:
            response = ask(False)
    except ServiceUnreachable as exc:
        err_console.print(f"[red]{exc.message}; or search with --in-process[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    except PardusError as exc:
        err_console.print(f"[red]{exc.message}[/]", soft_wrap=True)
        raise typer.Exit(1) from None
    print_results(response, title, _next_command(ctx))


def _service_url(url: str | None) -> str:
    # Deferred: the settings (pydantic).
    from pardus.deployments.settings import get_settings

    serving = get_settings().serving
    return url or f"http://{serving.host}:{serving.port}"


Category = Annotated[Optional[list[str]], typer.Option(help="Only this category (repeatable).")]
PriceMin = Annotated[Optional[float], typer.Option(min=0)]
PriceMax = Annotated[Optional[float], typer.Option(min=0)]
Url = Annotated[Optional[str], typer.Option(help="The service (default: host:port configured).")]
ApiKey = Annotated[Optional[str], typer.Option(envvar="PARDUS_API_KEY")]
Cursor = Annotated[Optional[str], typer.Option(help="The page after the one that printed it.")]
Debug = Annotated[bool, typer.Option(help="Show each result's relevance, boost and score.")]
K = Annotated[int, typer.Option(min=1, max=100)]


@app.command()
def search(
    ctx: typer.Context,
    text: Annotated[str, typer.Option("--text", "-t", help="What to look for.")] = "",
    image: Annotated[Optional[Path], typer.Option("--image", "-i", exists=True, dir_okay=False,
                                                  help="A query image.")] = None,
    k: K = 10,
    rerank: Annotated[bool, typer.Option(help="Rerank with the vision-language model.")] = True,
    category: Category = None,
    price_min: PriceMin = None,
    price_max: PriceMax = None,
    url: Url = None,
    api_key: ApiKey = None,
    in_process: Annotated[bool, typer.Option(
        help="No service: embed and search in this process (no reranking).")] = False,
    mode: Annotated[Optional[Mode], typer.Option(
        help="auto, dense (vectors), lexical (BM25 over words) or hybrid (both, fused); "
             "default: the server's.")] = None,
    dense_weight: Annotated[Optional[float], typer.Option(
        min=0, max=1, help="Weighted fusion: the vectors' weight (with --lexical-weight).")] = None,
    lexical_weight: Annotated[Optional[float], typer.Option(
        min=0, max=1, help="Weighted fusion: BM25's weight (with --dense-weight).")] = None,
    sort: Annotated[Sort, typer.Option(help="The order of the relevant products.")] = Sort.RELEVANCE,
    facet: Annotated[Optional[list[FacetName]], typer.Option(
        help="Count this facet's values (repeatable).")] = None,
    refine: Annotated[Optional[list[str]], typer.Option(
        help="Pick a facet value: FACET=VALUE, e.g. brand=Korvex or price=25-50 (repeatable; "
             "OR within a facet, AND across).")] = None,
    cursor: Cursor = None,
    debug: Debug = False,
) -> None:
    """Search a running Pardus service (or, with --in-process, the configured store directly)."""
    # Here, not at the top: `pardus --help` and the other commands need none of it.
    from pardus.cli.service import SearchArgs, search_in_process, search_over_http
    from pardus.deployments.settings import Weights

    if not text.strip() and image is None:
        raise typer.BadParameter("give --text, --image, or both")
    if (dense_weight is None) != (lexical_weight is None):
        raise typer.BadParameter("give --dense-weight and --lexical-weight together")
    weights = None if dense_weight is None else Weights(dense=dense_weight,
                                                        lexical=lexical_weight)
    filters = _filters(category, price_min, price_max)
    args = SearchArgs(text, image, k, rerank, filters, mode, weights, sort, tuple(facet or ()),
                      _refinements(refine), cursor, debug)
    _show(ctx, lambda here: search_in_process(args) if here else search_over_http(
        _service_url(url), args, api_key), in_process,
        f"query: {text!r}" + (f" + {image}" if image else ""))


@app.command()
def similar(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID", help="The product to start from.")],
    k: K = 10,
    category: Category = None,
    price_min: PriceMin = None,
    price_max: PriceMax = None,
    url: Url = None,
    api_key: ApiKey = None,
    in_process: Annotated[bool, typer.Option(
        help="No service: search the configured store in this process.")] = False,
    cursor: Cursor = None,
    debug: Debug = False,
) -> None:
    """Products like one in the catalogue, by its stored picture (no embedding)."""
    # Here, not at the top: `pardus --help` and the other commands need none of it.
    from pardus.cli.service import SearchArgs, similar_in_process, similar_over_http

    filters = _filters(category, price_min, price_max)
    args = SearchArgs(k=k, filters=filters, cursor=cursor, debug=debug)
    _show(ctx, lambda here: similar_in_process(item_id, args) if here else similar_over_http(
        _service_url(url), item_id, args, api_key), in_process, f"like {item_id}")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the sample catalogue and store go.")] = Path("data/demo"),
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 48,
    k: Annotated[int, typer.Option(min=1, max=100)] = 6,
    rerank: Annotated[bool, typer.Option(help="Rerank with the vision-language model (vLLM).")] = True,
    port: Annotated[int, typer.Option(help="HTTP port (a free one is taken if busy).")] = 8000,
    keep_running: Annotated[bool, typer.Option(help="Keep serving after the query (Ctrl-C stops).")] = False,
) -> None:
    """Draw a sample catalogue, ingest it into Milvus Lite, start the service, run a composed query."""
    # Deferred: Ray, ingest and the model code, for this command only.
    from pardus.cli.stopping import stops_cleanly

    with stops_cleanly(err_console.print) as stopping:  # from the start, as `serve`
        try:
            log_path = _demo(workdir, count, k, rerank, port, keep_running)
        except KeyboardInterrupt:  # before the demo's end: the shells' code for the signal
            err_console.print("[yellow]stopped before the demo finished[/]")
            raise typer.Exit(stopping.exit_code or 130) from None
    console.print(f"[dim]Ray's and the libraries' logs: {log_path}[/]", soft_wrap=True)


def _demo(workdir: Path, count: int, k: int, rerank: bool, port: int,
          keep_running: bool) -> Path:
    # Deferred: Ray, ingest and the model code, for this command only.
    from pardus.cli.catalogue import ingest_with_progress
    from pardus.cli.logs import library_logs
    from pardus.cli.service import (
        SearchArgs,
        embedder_overrides,
        ensure_ray,
        free_port,
        print_results,
        reranker_overrides,
        search_over_http,
        start_service,
        stop_service,
        wait_for_interrupt,
    )
    from pardus.cli.stopping import cleaning_up
    from pardus.deployments.catalogue import lite_server
    from pardus.deployments.settings import Settings
    from pardus.ingest.samples import draw_product, write_sample_catalogue

    catalogue = workdir / "catalogue"
    overrides = {
        "embedder": embedder_overrides(workdir, allow_tiny=True),
        "milvus": {"uri": str(workdir / "pardus.db"), "collection": "demo"},
        "ingest": {"report": str(workdir / "ingest-report.jsonl")},
        "serving": {"image_root": str(catalogue.resolve())},
    }
    settings = Settings(**overrides)  # as every replica resolves them: environment + overrides
    overrides["reranker"] = reranker_overrides(workdir, rerank, allow_tiny=True)
    with console.status(f"drawing {count} sample products"):
        write_sample_catalogue(catalogue, count=count)
    query_image, query_text = workdir / "query-leopard.jpg", "a phone case with this"
    draw_product("bag", "yellow", "leopard", seed=7).save(query_image)
    with library_logs(settings.log_dir, "demo", (console, err_console)) as log_path:
        try:
            ensure_ray()
            print_summary(ingest_with_progress(str(catalogue / "items.jsonl"), settings))
            url = start_service(overrides, "127.0.0.1", free_port("127.0.0.1", port))
            response = search_over_http(url, SearchArgs(query_text, query_image, k, rerank), None)
            print_results(response, f"query: {query_text!r} + {query_image}")
            if overrides["embedder"] or "model" in overrides["reranker"]:
                err_console.print("[yellow]Tiny random-weight models answered: the ranking "
                                  "and the reason above are meaningless.[/]", soft_wrap=True)
            if keep_running:
                try:
                    wait_for_interrupt(url, log_path)
                except KeyboardInterrupt:  # how --keep-running ends: a success
                    console.print("stopped")
            else:
                console.print("Try it yourself: `pardus demo --keep-running`, then open the "
                              "page, or `pardus search --text ... --image ...`.", soft_wrap=True)
        finally:
            with cleaning_up():
                stop_service()
                lite_server.stop(settings.milvus.uri)
    return log_path


# The catalogue commands (ingest, store ...) and the Kubernetes ones live in their own modules.
app.command()(ingest)
app.command("eval")(evaluate)
app.add_typer(store_app, name="store")
app.add_typer(k8s_app, name="k8s")


if __name__ == "__main__":
    app()
