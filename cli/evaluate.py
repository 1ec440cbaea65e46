"""`pardus eval`: measure relevance on a labelled query set, or generate a benchmark to measure."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from pardus.cli.catalogue import console, err_console, print_summary, with_overrides
from pardus.cli.logs import library_logs
from pardus.deployments.names import Mode, QueryKind

DEFAULT_COLLECTION = "eval"
DENSE_NOTE = ("its dense and hybrid rows measure pixel and token overlap at best, not a model; "
              "only the lexical rows mean something")


# The modes an evaluation row can run: every mode but auto (which picks one of them).
EvalMode = StrEnum("EvalMode", {mode.name: mode.value for mode in Mode if mode is not Mode.AUTO})


def _fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]{message}[/]", soft_wrap=True, highlight=False)
    return typer.Exit(code)


def _weights(values: list[str]):
    """--weights D:L -> Weights (BadParameter names the bad value)."""
    # Deferred, as in every command here: pydantic and the settings.
    from pydantic import ValidationError

    from pardus.deployments.settings import Weights

    out = []
    for value in values:
        try:
            dense, lexical = (float(part) for part in value.split(":"))
            out.append(Weights(dense=dense, lexical=lexical))
        except (ValueError, ValidationError):
            raise typer.BadParameter(f"{value!r}: give DENSE:LEXICAL, each 0 to 1, e.g. 1:0.5",
                                     param_hint="--weights") from None
    return out


def run_generate(folder: Path, items: int, queries: int, seed: int, collection: str,
                 milvus_uri: str | None) -> None:
    """Draw the benchmark into folder, ingest it into its own catalogue, say what to run."""
    # Deferred: Ray, pymilvus and the model code.
    from pardus.cli.service import embedder_overrides, ensure_ray
    from pardus.deployments.errors import PardusError
    from pardus.deployments.settings import get_settings
    from pardus.evaluation.benchmark import foreign_items, generate, ingest_benchmark, write_note

    embedder = embedder_overrides(folder, allow_tiny=True)
    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    settings = with_overrides(settings, "embedder", **embedder)
    settings = with_overrides(settings, "ingest", report=str(folder / "ingest-report.jsonl"))
    try:
        theirs = foreign_items(settings)
    except PardusError as exc:
        raise _fail(exc.message) from None
    if theirs:
        raise _fail(f"the catalogue {collection!r} at {settings.milvus.uri} holds {theirs} "
                    "items that are not a generated benchmark: give --collection another name")
    with console.status(f"drawing {items} products and {queries} queries into {folder}"):
        made = generate(folder, items, queries, seed)
    model = "a tiny random-weight embedder" if embedder else "the configured embedder"
    write_note(made, collection, model)
    with library_logs(settings.log_dir, "eval", (console, err_console)) as log, \
            console.status(f"ingesting into {collection!r}"):
        ensure_ray()
        done = ingest_benchmark(made, settings)
    console.print(f"[dim]Ray's and the libraries' logs: {log}[/]", soft_wrap=True)
    print_summary(done.summary)
    if done.dropped:
        console.print(f"{collection!r} now serves {done.label}; dropped the older benchmark "
                      f"versions {', '.join(done.dropped)}", soft_wrap=True)
    _say_next(made, collection, milvus_uri, tiny=bool(embedder))


def _say_next(made, collection: str, milvus_uri: str | None, tiny: bool) -> None:
    bench, queries = made.benchmark, made.queries
    uri = f" --milvus-uri {milvus_uri}" if milvus_uri else ""
    console.print(f"[green]benchmark written to {made.folder}[/]: {len(bench.products)} items, "
                  f"{len(bench.queries)} queries ({bench.count('text')} text, "
                  f"{bench.count('image')} image, {bench.count('composed')} composed)",
                  soft_wrap=True)
    console.print("Measure it in process (no reranking):", soft_wrap=True)
    typer.echo(f"  pardus eval {queries} --in-process --collection {collection}{uri}"
               + (" --tiny" if tiny else ""))
    console.print("or through the service, reranking included:", soft_wrap=True)
    env = f"PARDUS_MILVUS__COLLECTION={collection} PARDUS_SERVING__IMAGE_ROOT={made.folder}"
    env += f" PARDUS_MILVUS__URI={milvus_uri}" if milvus_uri else ""
    typer.echo(f"  {env} pardus serve" + (" --tiny" if tiny else ""))
    typer.echo(f"  pardus eval {queries} --rerank --catalogue-size {len(bench.products)}")
    if tiny:
        err_console.print(f"[yellow]Ingested with a tiny random-weight embedder: {DENSE_NOTE}.[/]",
                          soft_wrap=True)


def _target(in_process: bool, url: str | None, api_key: str | None, settings):
    # Deferred: the service code (and in process the model code).
    from pardus.evaluation.targets import HttpTarget, InProcessTarget

    if in_process:
        return InProcessTarget(settings)
    serving = settings.serving
    return HttpTarget(url or f"http://{serving.host}:{serving.port}", api_key)


def _measure(target, queries, rows, catalogue: str, size: int | None):
    # Deferred: the evaluation code.
    from pardus.evaluation.pipeline import evaluate

    columns = (*Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("searching", total=None)

        async def go():
            try:
                return await evaluate(
                    target, queries, rows, catalogue, size,
                    on_start=lambda total: progress.update(task, total=total),
                    on_search=lambda: progress.advance(task))
            finally:
                await target.close()

        return asyncio.run(go())


def run_eval(queries_path: Path, *, in_process: bool, url: str | None, api_key: str | None,
             rerank: bool, kinds: list[QueryKind], modes: list[Mode], tags: list[str],
             weights: list, size: int | None, collection: str | None,
             milvus_uri: str | None, report_path: Path | None, tiny: bool) -> None:
    # Deferred: the settings and the evaluation code.
    from pardus.cli.service import embedder_overrides
    from pardus.deployments.settings import get_settings
    from pardus.evaluation.queries import QuerySetError, parse_queries
    from pardus.evaluation.runner import MODES, plan_rows
    from pardus.evaluation.targets import QueryRefused, TargetError

    settings = with_overrides(get_settings(), "milvus", uri=milvus_uri, collection=collection)
    tiny_used = False
    if in_process:
        embedder = embedder_overrides(queries_path.parent, allow_tiny=tiny)
        settings, tiny_used = with_overrides(settings, "embedder", **embedder), bool(embedder)
    try:
        queries = parse_queries(queries_path).select(kinds, tags)
    except QuerySetError as exc:
        raise _fail(str(exc)) from None
    if not queries.queries:
        raise _fail(f"{queries_path}: no query of the kinds and tags asked for")
    rows = plan_rows(queries.kinds(), [m for m in MODES if m in modes] if modes else MODES,
                     weights, rerank)
    catalogue = f"the catalogue {settings.milvus.collection!r}"
    try:
        with library_logs(settings.log_dir, "eval", (console, err_console)) as log:
            report = _measure(_target(in_process, url, api_key, settings), queries, rows,
                              catalogue, size)
    except QuerySetError as exc:
        raise _fail(str(exc)) from None
    except QueryRefused as exc:
        raise _fail(f"{queries_path}:{exc.query.line}: {exc}") from None
    except TargetError as exc:
        raise _fail(str(exc), code=1) from None
    _show(report, report_path or queries_path.with_name("eval-report.json"), tiny_used)
    console.print(f"[dim]Ray's and the libraries' logs: {log}[/]", soft_wrap=True)


def _show(report, report_path: Path, tiny_used: bool) -> None:
    """The table, what its numbers mean, and the JSON report and chart written."""
    # Deferred: matplotlib, for the chart.
    from pardus.evaluation.chart import write_chart
    from pardus.evaluation.show import legend, table

    console.print(table(report))
    for line in legend(report):
        console.print(line, soft_wrap=True, highlight=False)
    chart = write_chart(report, report_path.with_suffix(".png"))
    console.print(f"report: {report.write(report_path)}  chart: {chart}", soft_wrap=True)
    if tiny_used:
        err_console.print(f"[yellow]Measured with a tiny random-weight embedder: {DENSE_NOTE}.[/]",
                          soft_wrap=True)


def evaluate(
    queries: Annotated[Optional[Path], typer.Argument(
        help="A labelled query set (JSONL: text and/or image, relevant item ids).")] = None,
    generate: Annotated[Optional[Path], typer.Option(
        "--generate", help="Instead: write a benchmark with known answers into this folder, "
                           "draw its catalogue and ingest it (then run what it prints).")] = None,
    items: Annotated[int, typer.Option(min=8, max=20_000, help=(
        "--generate: products (up to 20,000: the queries are drawn from pairs of products, "
        "a couple of minutes at the most)."))] = 200,
    query_count: Annotated[int, typer.Option(
        "--queries", min=3, max=20_000, help="--generate: queries, a third of each kind.")] = 90,
    seed: Annotated[int, typer.Option(help="--generate: the random seed.")] = 0,
    in_process: Annotated[bool, typer.Option(
        help="No service: embed and search in this process (no reranking).")] = False,
    url: Annotated[Optional[str], typer.Option(
        help="The service (default: the configured host:port).")] = None,
    api_key: Annotated[Optional[str], typer.Option(envvar="PARDUS_API_KEY")] = None,
    rerank: Annotated[bool, typer.Option(
        help="Every row also reranked, for the rerank lift (through the service).")] = False,
    kind: Annotated[Optional[list[QueryKind]], typer.Option(
        help="Only queries of this kind (repeatable).")] = None,
    mode: Annotated[Optional[list[EvalMode]], typer.Option(
        help="Only this mode (repeatable).")] = None,
    tag: Annotated[Optional[list[str]], typer.Option(
        help="Only queries with this tag (repeatable).")] = None,
    weights: Annotated[Optional[list[str]], typer.Option(
        help="Extra hybrid rows with weighted fusion DENSE:LEXICAL, e.g. 1:0.5 (repeatable).")
    ] = None,
    catalogue_size: Annotated[Optional[int], typer.Option(
        min=1, help="Items in the catalogue, for the chance level (known in process).")] = None,
    collection: Annotated[Optional[str], typer.Option(
        help="The catalogue's name (--generate: default 'eval').")] = None,
    milvus_uri: Annotated[Optional[str], typer.Option(
        help="Local path (Milvus Lite) or http://host:port.")] = None,
    report: Annotated[Optional[Path], typer.Option(
        help="The JSON report; the PNG chart goes beside it. Default: eval-report.json "
             "beside the query set.")] = None,
    tiny: Annotated[bool, typer.Option(
        help="In process: a tiny random-weight embedder where real weights are missing "
             "(only lexical rows mean anything then).")] = False,
) -> None:
    """Measure relevance (recall@k, nDCG@10, MRR, latency, rerank lift) per query kind and mode."""
    if (queries is None) == (generate is None):
        raise typer.BadParameter("give a query set (QUERIES) or --generate DIR, not both")
    if generate is not None:
        run_generate(generate, items, query_count, seed, collection or DEFAULT_COLLECTION,
                     milvus_uri)
        return
    if in_process and (rerank or url):
        raise typer.BadParameter("in process there is no reranker and no URL: run the rerank "
                                 "rows through the service (--url, without --in-process)")
    run_eval(queries, in_process=in_process, url=url, api_key=api_key, rerank=rerank,
             kinds=list(kind or []),
             modes=[Mode(m.value) for m in mode or []],
             tags=list(tag or []), weights=_weights(weights or []), size=catalogue_size,
             collection=collection, milvus_uri=milvus_uri, report_path=report, tiny=tiny)
