"""The `pardus` command line."""

from __future__ import annotations

import logging
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from serve.cli_catalogue import console, err_console, ingest, print_summary, store_app, with_overrides

app = typer.Typer(help="Pardus: multimodal semantic product search.", no_args_is_help=True)
models_app = typer.Typer(help="Model files: tiny random-weight models for tests and demos.")
app.add_typer(models_app, name="models")


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
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
    from deployments.embedder.tiny import write_tiny_model

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
    from deployments.reranker.tiny_phi3v import write_tiny_phi3v

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
    import numpy as np

    from deployments.embedder.checkpoint import WeightsNotFound
    from deployments.embedder.encoder import Embedder
    from deployments.settings import get_settings

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
        table.add_column(str(i))
    for i, label in enumerate(labels):
        table.add_row(f"{i} {label}", *[f"{v:.3f}" for v in vectors @ vectors[i]])
    console.print(table)


def _embedder_settings_or_tiny(workdir: Path):
    """The configured embedder settings; when its weights are missing, a tiny model (say so)."""
    from deployments.embedder.checkpoint import WeightsNotFound, resolve
    from deployments.embedder.tiny import write_tiny_model
    from deployments.settings import get_settings

    settings = get_settings().embedder
    try:
        resolve(settings)
        return settings
    except WeightsNotFound as exc:
        err_console.print(f"[yellow]{exc}[/]")
    tiny = workdir / "tiny-model"
    err_console.print(
        f"[yellow]Using a tiny random-weight model written to {tiny} instead: the pipeline is "
        "real, the rankings are meaningless.[/]"
    )
    env = write_tiny_model(tiny)
    return settings.model_copy(update={
        "checkpoint": env["PARDUS_EMBEDDER__CHECKPOINT"],
        "text_model": env["PARDUS_EMBEDDER__TEXT_MODEL"], "vision_config": None,
    })


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Where the sample catalogue and store go.")] = Path("data/demo"),
    count: Annotated[int, typer.Option(min=1, max=10_000)] = 48,
    k: Annotated[int, typer.Option(min=1, max=100)] = 5,
) -> None:
    """Draw a sample catalogue, ingest it into Milvus Lite with Ray Data, run a composed query."""
    from deployments import lite_server
    from deployments.embedder.encoder import Embedder
    from deployments.settings import get_settings
    from deployments.store import CatalogueStore
    from ingest.pipeline import run_ingest
    from ingest.samples import draw_product, write_sample_catalogue

    settings = get_settings().model_copy(update={"embedder": _embedder_settings_or_tiny(workdir)})
    settings = with_overrides(settings, "milvus", uri=str(workdir / "pardus.db"), collection="demo")
    settings = with_overrides(settings, "ingest", report=str(workdir / "ingest-report.jsonl"))
    with console.status(f"drawing {count} sample products"):
        write_sample_catalogue(workdir / "catalogue", count=count)
    try:
        summary = run_ingest(str(workdir / "catalogue" / "items.jsonl"), settings)
        print_summary(summary)
        embedder = Embedder(settings.embedder)
        query_image, query_text = workdir / "query-leopard.jpg", "a phone case with this"
        draw_product("bag", "yellow", "leopard", seed=7).save(query_image)
        query = embedder.encode_pairs([query_image], [query_text]).vectors[0]
        store = CatalogueStore(settings.milvus, embedder.dim)
        hits = store.search(query, k)
        store.close()
    finally:
        lite_server.stop(settings.milvus.uri)
    table = Table(title=f"query: {query_text!r} + {query_image}")
    for column in ("rank", "score", "id", "title", "category", "price"):
        table.add_column(column)
    for rank, hit in enumerate(hits, start=1):
        item = hit.item
        table.add_row(str(rank), f"{hit.score:.3f}", item.id, item.title, item.category,
                      f"{item.price:.2f}" if item.price >= 0 else "-")
    console.print(table)


# The catalogue commands (ingest, store ...) live in their own module.
app.command()(ingest)
app.add_typer(store_app, name="store")


if __name__ == "__main__":
    app()
