"""Run a query set against a target: one row per query kind x mode (x fusion weights) x rerank,
every query of the row's kind in every row, one search at a time (so latencies are honest)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from pardus.deployments.catalogue.plans import PlanError, make_plan
from pardus.deployments.names import Mode, QueryKind
from pardus.deployments.settings import SearchSettings, Weights
from pardus.evaluation.metrics import DEPTH, Scores, score
from pardus.evaluation.queries import EvalQuery, QuerySet
from pardus.evaluation.targets import Answer, Ask, Target

MODES = (Mode.DENSE, Mode.LEXICAL, Mode.HYBRID)


@dataclass(frozen=True)
class Row:
    """One line of the table: which queries, searched how."""

    kind: QueryKind
    mode: Mode
    # (dense, lexical) of weighted fusion; None: the server's fusion for the kind (RRF for text,
    # weighted for composed). A tuple, so that rows are hashable.
    weights: tuple[float, float] | None
    rerank: bool

    @property
    def fusion_weights(self) -> Weights | None:
        return None if self.weights is None else Weights(dense=self.weights[0],
                                                         lexical=self.weights[1])

    @property
    def applicable(self) -> bool:
        """Whether the mode can use the whole query, by the plans' own rule (the API's 400
        invalid_mode): a picture alone has no words for lexical or hybrid, lexical would drop
        the picture of a composed query."""
        try:
            make_plan(self.kind, SearchSettings(), self.mode)
        except PlanError:
            return False
        return True

    @property
    def off(self) -> Row:
        """The same row without reranking: what the rerank lift compares against."""
        return replace(self, rerank=False)

    def ask(self) -> Ask:
        return Ask(self.mode, self.fusion_weights, self.rerank, DEPTH)


def plan_rows(kinds: Iterable[QueryKind], modes: Sequence[Mode] = MODES,
              weights: Sequence[Weights] = (), rerank: bool = False) -> list[Row]:
    """Every kind x mode; hybrid rows once with the server's fusion and once per `weights`;
    each without and (with `rerank`) with reranking. Inapplicable rows once, for the table."""
    rows = []
    for kind in kinds:
        for mode in modes:
            variants = [None, *((w.dense, w.lexical) for w in weights)] if (
                mode is Mode.HYBRID) else [None]
            for fused in variants:
                row = Row(kind, mode, fused, False)
                if not row.applicable:
                    if fused is None:
                        rows.append(row)
                    continue
                rows.append(row)
                if rerank:
                    rows.append(replace(row, rerank=True))
    return rows


@dataclass(frozen=True)
class QueryResult:
    query: EvalQuery
    answer: Answer
    scores: Scores


@dataclass
class RowRun:
    row: Row
    results: list[QueryResult]

    def by_query(self) -> dict[str, QueryResult]:
        return {result.query.id: result for result in self.results}


def count_searches(queries: QuerySet, rows: Iterable[Row]) -> int:
    return sum(1 for row in rows if row.applicable for q in queries.queries if q.kind is row.kind)


async def run(target: Target, queries: QuerySet, rows: Iterable[Row],
              on_search: Callable[[], None] | None = None) -> list[RowRun]:
    """Every applicable row over its kind's queries; a TargetError or QueryRefused stops it.
    Each row starts with one untimed search (its first query), so that loading a model or
    filling a cache on the first call does not count as the row's latency."""
    runs = []
    for row in rows:
        mine = [q for q in queries.queries if q.kind is row.kind] if row.applicable else []
        if mine:
            await target.search(mine[0], row.ask())
        results = []
        for query in mine:
            answer = await target.search(query, row.ask())
            results.append(QueryResult(query, answer, score(answer.ids, query.grades)))
            if on_search is not None:
                on_search()
        runs.append(RowRun(row, results))
    return runs
