"""`pardus ingest` and `pardus store`: the catalogue side of the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from pardus.cli.console import Console
from pardus.cli.logs import library_logs

console = Console()
err_console = Console(stderr=True)


def print_summary(summary) -> None:
    state = "the live version" if summary.live else "not live: `pardus store promote` it"
    console.print(f"ingested {summary.source} into {summary.collection!r} ({state}) at "
                  f"{summary.uri}", soft_wrap=True)
    table = Table()
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_column("pictures", justify="right")
    table.add_row("seen", str(summary.seen), "")
    table.add_row("indexed now", str(summary.indexed), str(summary.rows))
    if summary.duplicates:
        table.add_row("duplicates (same id again)", "", str(summary.duplicates))
    table.add_row("already indexed", str(summary.already), "")
    for reason, count in sorted(summary.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count), "")
    for reason, count in sorted(summary.skipped_pictures.items()):
        table.add_row(f"picture left out: {reason}", "", str(count))
    table.add_row("in the version", str(summary.count_after), str(summary.rows_after))
    table.add_row("seconds", f"{summary.seconds:.1f}", "")
    table.add_row("indexed items/s", f"{summary.items_per_s:.1f}", "")
    console.print(table)
    if summary.skipped or summary.skipped_pictures:
        console.print(f"what was left out, and why: {summary.report}", soft_wrap=True)


def _say_lite_server(settings) -> None:
    # Deferred, as in every command here: the catalogue code loads pymilvus, ingest Ray and torch.
    from pardus.deployments.catalogue.engines import shared_server

    server = shared_server(settings.milvus)
    if server is not None:
        console.print(
            f"Milvus Lite serves {settings.milvus.uri} at {server.uri} (pid {server.pid}) for "
            "other processes; `pardus store stop` stops it.", soft_wrap=True,
        )


store_app = typer.Typer(help="The Milvus store: versions of the catalogue (status, promote, drop), the shared Milvus Lite server (stop).")


def _store(milvus_uri: str | None, collection: str | None):
    """The configured catalogue's store (never starts a Milvus Lite server); it connects on
    first use, so its callers report a failure to connect like any other."""
    # Deferred: pymilvus.
    from pardus.deployments.catalogue.store import CatalogueStore
    from pardus.deployments.settings import get_settings

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    return CatalogueStore(settings.milvus, shared=False)


UriOption = Annotated[Optional[str], typer.Option(help="Local path or http://host:port.")]
CollectionOption = Annotated[Optional[str], typer.Option(help="The catalogue's name.")]


@store_app.command("status")
def store_status(milvus_uri: UriOption = None, collection: CollectionOption = None) -> None:
    """Show the catalogue's versions (items, picture rows), which one is live, and where."""
    # Deferred: pymilvus.
    from pardus.deployments.catalogue.store import StoreError, StoreUnavailable

    store = _store(milvus_uri, collection)
    try:
        versions = store.versions()
        live = store.live()
        count = store.count() if live else 0
    except (StoreError, StoreUnavailable) as exc:
        err_console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    state = f"{count} items in {live!r}" if live else "no live version yet"
    console.print(f"catalogue {store.alias!r} at {store.uri}: {state}", soft_wrap=True)
    if versions:
        table = Table("version", "collection", "picture rows", "live")
        for version in versions:
            table.add_row(version.label, version.collection, str(version.rows),
                          "yes" if version.live else "")
        console.print(table)


@store_app.command("promote")
def store_promote(
    version: Annotated[str, typer.Argument(help="The version to serve, e.g. v2.")],
    replace_legacy: Annotated[bool, typer.Option(
        help="Drop a collection of an older Pardus that holds the catalogue's name.")] = False,
    milvus_uri: UriOption = None, collection: CollectionOption = None,
) -> None:
    """Point the catalogue's name at a version: the service reads it from then on."""
    _version_call(milvus_uri, collection, lambda store: store.promote(version, replace_legacy),
                  "now serves {}")


@store_app.command("drop")
def store_drop(
    version: Annotated[str, typer.Argument(help="A version that is not live.")],
    milvus_uri: UriOption = None, collection: CollectionOption = None,
) -> None:
    """Drop a version of the catalogue (never the live one)."""
    _version_call(milvus_uri, collection, lambda store: store.drop_version(version),
                  "dropped {}")


def _version_call(milvus_uri, collection, call, done: str) -> None:
    # Deferred: pymilvus.
    from pardus.deployments.catalogue.store import StoreError, StoreUnavailable
    from pardus.deployments.catalogue.versions import VersionError

    store = _store(milvus_uri, collection)
    try:
        name = call(store)
    except (VersionError, StoreError, StoreUnavailable) as exc:
        err_console.print(f"[red]{exc}[/]", soft_wrap=True)
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"{store.alias!r} " + done.format(repr(name)), soft_wrap=True)


@store_app.command("stop")
def store_stop(
    milvus_uri: Annotated[Optional[str], typer.Option(help="The local Milvus Lite path.")] = None,
) -> None:
    """Stop the shared Milvus Lite server of a local path."""
    # Deferred: the settings and the server record.
    from pardus.deployments.catalogue.engines import stop_shared_server
    from pardus.deployments.settings import get_settings

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri)
    stopped = stop_shared_server(settings.milvus)
    if stopped is None:
        raise typer.BadParameter(f"{settings.milvus.uri} is not a local Milvus Lite path")
    console.print("stopped" if stopped else f"no Milvus Lite server runs for {settings.milvus.uri}")


def with_overrides(settings, section: str, **values):
    """A copy of settings with some fields of one section replaced (None = keep)."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return settings
    part = getattr(settings, section).model_copy(update=values)
    return settings.model_copy(update={section: part})


def print_attributes(summary) -> None:
    console.print(f"updated attributes from {summary.source} in {summary.version!r}",
                  soft_wrap=True)
    table = Table()
    table.add_column("")
    table.add_column("items", justify="right")
    table.add_row("updated (every picture row)", str(summary.updated))
    table.add_row("not in the catalogue", str(summary.missing))
    for reason, count in sorted(summary.skipped.items()):
        table.add_row(f"skipped: {reason}", str(count))
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)
    if summary.missing or summary.skipped:
        console.print(f"what was left out, and why: {summary.report}", soft_wrap=True)


def ingest_with_progress(source: str, settings, attributes_only: bool = False, **options):
    """run_ingest (or run_attributes) with our progress bar (items done of the source's,
    when known)."""
    # Deferred: Ray and the model code.
    from pardus.ingest.attributes import run_attributes
    from pardus.ingest.pipeline import run_ingest

    with Progress(*Progress.get_default_columns(), MofNCompleteColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("updating items" if attributes_only else "indexing items",
                            total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        if attributes_only:
            return run_attributes(source, settings, version=options.get("version"),
                                  progress=progress)
        return run_ingest(source, settings, **options, progress=progress)


def ingest(
    source: Annotated[str, typer.Argument(help="A folder of images, or a .jsonl/.parquet manifest.")],
    collection: Annotated[Optional[str], typer.Option(help="Collection name.")] = None,
    milvus_uri: Annotated[Optional[str], typer.Option(help="Local path (Milvus Lite) or http://host:port.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(min=1, help="Images per embedding batch.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Where to write the skipped items (JSONL).")] = None,
    allow_http: Annotated[Optional[bool], typer.Option("--allow-http", help="Fetch http(s) image URLs.")] = None,
    reembed: Annotated[bool, typer.Option(help="Embed items already indexed again.")] = False,
    version: Annotated[Optional[str], typer.Option(
        help="Write this version (e.g. v2) beside the live one; `pardus store promote` then "
             "serves it. Default: the live version (v1, made live, on the first ingest).")] = None,
    attributes_only: Annotated[bool, typer.Option(
        "--attributes-only", help="Only update price, rating, stock, popularity and when "
                                  "added of items already indexed (nothing embedded).")] = False,
) -> None:
    """Index a catalogue into Milvus (idempotent: re-running adds nothing twice)."""
    # Deferred: the stop's handlers (Ray's own are replaced after it starts).
    from pardus.cli.stopping import stops_cleanly

    with stops_cleanly(err_console.print) as stopping:
        try:
            _ingest(source, collection, milvus_uri, batch_size, report, allow_http, reembed,
                    version, attributes_only)
        except KeyboardInterrupt:  # what was written stays: a re-run adds the rest
            err_console.print("[yellow]stopped: run the same command again to index the rest "
                              "(nothing is indexed twice)[/]", soft_wrap=True)
            raise typer.Exit(stopping.exit_code or 130) from None


def _ingest(source: str, collection: str | None, milvus_uri: str | None, batch_size: int | None,
            report: Path | None, allow_http: bool | None, reembed: bool, version: str | None,
            attributes_only: bool) -> None:
    # Deferred: Ray, pymilvus and the model code.
    from pardus.deployments.catalogue.lite_server import LiteServerError
    from pardus.deployments.catalogue.store import StoreError, StoreUnavailable
    from pardus.deployments.catalogue.versions import VersionError
    from pardus.deployments.embedder.checkpoint import WeightsNotFound
    from pardus.deployments.errors import PardusError
    from pardus.deployments.settings import get_settings
    from pardus.ingest.sources import Source, SourceError

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    settings = with_overrides(settings, "ingest", batch_size=batch_size, allow_http=allow_http,
                               report=str(report) if report else None)
    with library_logs(settings.log_dir, "ingest", (console, err_console)) as log_path:
        try:
            # Deferred: Ray (cli.service is imported by the commands that start services).
            from pardus.cli.service import ensure_ray

            Source.open(source)  # a missing source fails at once, before Ray starts
            ensure_ray()  # here, not in the pipeline: SIGTERM must reach our clean-up
            if attributes_only:
                summary = ingest_with_progress(source, settings, attributes_only=True,
                                               version=version)
            else:
                summary = ingest_with_progress(source, settings, reembed=reembed,
                                               version=version)
        except (SourceError, WeightsNotFound, StoreUnavailable, StoreError, LiteServerError,
                VersionError, PardusError) as exc:
            err_console.print(f"[red]{exc}[/]", soft_wrap=True)
            raise typer.Exit(2) from None
    if attributes_only:
        print_attributes(summary)
        console.print(f"[dim]Ray's and the libraries' logs: {log_path}[/]", soft_wrap=True)
        return
    print_summary(summary)
    _say_lite_server(settings)
    console.print(f"[dim]Ray's and the libraries' logs: {log_path}[/]", soft_wrap=True)
    if summary.failed:
        err_console.print("[red]nothing could be indexed[/]")
        raise typer.Exit(1)
    denied = summary.skipped_pictures.get("access_denied", 0)
    if denied:  # a missing identity, not bad rows: the job must not look like a success
        err_console.print(f"[red]{denied} pictures could not be read for lack of rights: give "
                          "every ingest worker the storage identity (see the report), then run "
                          "the ingest again (what was indexed stays)[/]", soft_wrap=True)
        raise typer.Exit(2)
