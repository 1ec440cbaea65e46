"""A whole evaluation: check the query set against the catalogue, run every row, summarize."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pardus.evaluation.queries import QuerySet
from pardus.evaluation.report import EvalReport, summarize
from pardus.evaluation.runner import Row, count_searches, run
from pardus.evaluation.targets import Target, TargetError


async def check_catalogue(target: Target, queries: QuerySet, catalogue: str) -> None:
    """QuerySetError naming each line whose relevant ids the catalogue does not hold."""
    missing = await target.missing(queries.item_ids())
    if missing:
        raise queries.unknown_ids(missing, catalogue)


async def evaluate(target: Target, queries: QuerySet, rows: Sequence[Row], catalogue: str,
                   catalogue_size: int | None = None,
                   on_start: Callable[[int], None] | None = None,
                   on_search: Callable[[], None] | None = None) -> EvalReport:
    """The report of `rows` over `queries`; on_start gets the number of searches to come.
    The catalogue's size comes from the target when it can tell (in process)."""
    size = catalogue_size or await target.catalogue_size()
    if size == 0:
        raise TargetError(f"the catalogue {catalogue} is empty (or has no live version): "
                          "ingest it first (pardus ingest, or pardus eval --generate DIR)")
    await check_catalogue(target, queries, catalogue)
    if on_start is not None:
        on_start(count_searches(queries, rows))
    runs = await run(target, queries, rows, on_search)
    return summarize(queries, runs, target.name, size)
