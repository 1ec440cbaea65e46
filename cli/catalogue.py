"""`pardus ingest` and `pardus store`: the catalogue side of the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_summary(summary) -> None:
    console.print(f"ingested {summary.source} into {summary.collection!r} at {summary.uri}",
                  soft_wrap=True)
    table = Table()
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_row("seen", str(summary.seen))
    table.add_row("indexed now", str(summary.indexed))
    if summary.duplicates:
        table.add_row("duplicates (same id again)", str(summary.duplicates))
    table.add_row("already indexed", str(summary.already))
    for reason, count in sorted(summary.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    table.add_row("in collection", str(summary.count_after))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    table.add_row("indexed items/s", f"{summary.items_per_s:.1f}")
    console.print(table)
    if summary.skipped:
        console.print(f"skipped items and reasons: {summary.report}", soft_wrap=True)


def _say_lite_server(settings) -> None:
    from deployments.catalogue import lite_server

    if settings.milvus.is_local:
        server = lite_server.running(settings.milvus.uri)
        if server is not None:
            console.print(
                f"Milvus Lite serves {settings.milvus.uri} at {server.uri} (pid {server.pid}) for "
                "other processes; `pardus store stop` stops it.", soft_wrap=True,
            )


store_app = typer.Typer(help="The Milvus store: status, stop the shared Milvus Lite server.")


@store_app.command("status")
def store_status(
    milvus_uri: Annotated[Optional[str], typer.Option(help="Local path or http://host:port.")] = None,
    collection: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Show the collection's item count and where it is served."""
    from deployments.settings import get_settings
    from deployments.catalogue.store import CatalogueStore, StoreError, StoreUnavailable

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    try:
        store = CatalogueStore(settings.milvus, shared=False)  # never starts a server
        exists = store.ping(settings.milvus.timeout_s)
        count = store.count() if exists else 0
        store.close()
    except (StoreError, StoreUnavailable) as exc:
        err_console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    state = f"{count} items" if exists else "does not exist yet"
    console.print(f"collection {settings.milvus.collection!r} at {store.uri}: {state}", soft_wrap=True)


@store_app.command("stop")
def store_stop(
    milvus_uri: Annotated[Optional[str], typer.Option(help="The local Milvus Lite path.")] = None,
) -> None:
    """Stop the shared Milvus Lite server of a local path."""
    from deployments.catalogue import lite_server
    from deployments.settings import get_settings

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri)
    if not settings.milvus.is_local:
        raise typer.BadParameter(f"{settings.milvus.uri} is not a local Milvus Lite path")
    stopped = lite_server.stop(settings.milvus.uri)
    console.print("stopped" if stopped else f"no Milvus Lite server runs for {settings.milvus.uri}")


def with_overrides(settings, section: str, **values):
    """A copy of settings with some fields of one section replaced (None = keep)."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return settings
    part = getattr(settings, section).model_copy(update=values)
    return settings.model_copy(update={section: part})


def ingest(
    source: Annotated[str, typer.Argument(help="A folder of images, or a .jsonl/.parquet manifest.")],
    collection: Annotated[Optional[str], typer.Option(help="Collection name.")] = None,
    milvus_uri: Annotated[Optional[str], typer.Option(help="Local path (Milvus Lite) or http://host:port.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Images per embedding batch.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Where to write the skipped items (JSONL).")] = None,
    allow_http: Annotated[Optional[bool], typer.Option("--allow-http", help="Fetch http(s) image URLs.")] = None,
    reembed: Annotated[bool, typer.Option(help="Embed items already indexed again.")] = False,
) -> None:
    """Index a catalogue into Milvus (idempotent: re-running adds nothing twice)."""
    from deployments.embedder.checkpoint import WeightsNotFound
    from deployments.catalogue.lite_server import LiteServerError
    from deployments.settings import get_settings
    from deployments.catalogue.store import StoreError, StoreUnavailable
    from ingest.pipeline import run_ingest
    from ingest.sources import SourceError

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    settings = with_overrides(settings, "ingest", batch_size=batch_size, allow_http=allow_http,
                               report=str(report) if report else None)
    try:
        summary = run_ingest(source, settings, reembed=reembed)
    except (SourceError, WeightsNotFound, StoreUnavailable, StoreError, LiteServerError) as exc:
        err_console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    print_summary(summary)
    _say_lite_server(settings)
    if summary.failed:
        err_console.print("[red]nothing could be indexed[/]")
        raise typer.Exit(1)
