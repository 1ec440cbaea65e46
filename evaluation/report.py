"""What a run measured, typed: per-row metrics, latency and rerank lift, chance levels, and every
query's answer (the JSON report); `summarize` builds it from the runs."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from pardus.deployments.names import Fusion, Mode, QueryKind, RerankOutcome
from pardus.deployments.settings import Weights
from pardus.evaluation.metrics import DEPTH, Scores, chance, percentile
from pardus.evaluation.queries import QuerySet
from pardus.evaluation.runner import RowRun

SAME = 1e-9  # an nDCG change smaller than this is no change


class Latency(BaseModel):
    p50_ms: float
    p95_ms: float


class Lift(BaseModel):
    """Reranking against the same row without it, query by query."""

    delta_ndcg_10: float = Field(description="Mean of nDCG@10 reranked minus nDCG@10 not.")
    helped: float = Field(description="Share of queries whose nDCG@10 rose.")
    hurt: float = Field(description="Share of queries whose nDCG@10 fell.")
    unchanged: float
    reranked: float = Field(description="Share of answers the reranker ordered (outcome "
                                        "'reranked'); the rest kept the retrieval order.")
    not_reranked: dict[RerankOutcome, int] = Field(
        description="Answers left in retrieval order, by outcome (timeout, too_few, ...).")
    repaired: float = Field(description="Share of reranked answers whose model output needed "
                                        "repairs (ids missing, invented or repeated).")


class RowReport(BaseModel):
    kind: QueryKind
    mode: Mode
    fusion: Fusion | None = Field(None, description="rrf or weighted, when both routes ran.")
    weights: Weights | None = Field(None, description="Given weights; None: the server's.")
    rerank: bool
    applicable: bool = Field(description="False: the query kind cannot search this way.")
    queries: int
    scores: Scores | None = None
    latency: Latency | None = None
    lift: Lift | None = None

    @property
    def label(self) -> str:
        """The mode as the table shows it: hybrid rows name their fusion."""
        if self.weights is not None:
            return f"{self.mode} weighted {self.weights.dense:g}/{self.weights.lexical:g}"
        return f"{self.mode} {self.fusion}" if self.fusion else self.mode


class QueryReport(BaseModel):
    id: str
    line: int
    tag: str
    kind: QueryKind
    mode: Mode
    weights: Weights | None
    rerank: bool
    ids: list[str]
    scores: Scores
    latency_ms: float
    outcome: RerankOutcome


class EvalReport(BaseModel):
    queries_file: str
    target: str
    created: str
    catalogue_size: int | None = Field(description="Items in the catalogue (chance levels).")
    depth: int = Field(description="Results asked per query.")
    rows: list[RowReport]
    chance: dict[str, Scores] = Field(description="Per query kind: the expected scores of a "
                                                  "random ranking of the catalogue.")
    queries: list[QueryReport]

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))
        return path


def _fusion(run: RowRun) -> Fusion | None:
    found = Counter(r.answer.fusion for r in run.results if r.answer.fusion)
    return found.most_common(1)[0][0] if found else None


def _lift(run: RowRun, off: RowRun) -> Lift:
    before = off.by_query()
    deltas = [r.scores.ndcg_10 - before[r.query.id].scores.ndcg_10 for r in run.results]
    n = len(deltas)
    return Lift(delta_ndcg_10=sum(deltas) / n, helped=sum(d > SAME for d in deltas) / n,
                hurt=sum(d < -SAME for d in deltas) / n,
                unchanged=sum(abs(d) <= SAME for d in deltas) / n,
                reranked=sum(r.answer.reranked for r in run.results) / n,
                not_reranked=dict(Counter(r.answer.outcome for r in run.results
                                          if not r.answer.reranked)),
                repaired=sum(r.answer.repaired for r in run.results if r.answer.reranked) / n)


def row_report(run: RowRun, runs: dict) -> RowReport:
    row = run.row
    report = RowReport(kind=row.kind, mode=row.mode, weights=row.fusion_weights,
                       rerank=row.rerank, applicable=row.applicable, queries=len(run.results),
                       fusion=_fusion(run))
    if not run.results:
        return report
    millis = [r.answer.seconds * 1000 for r in run.results]
    report.scores = Scores.mean([r.scores for r in run.results])
    report.latency = Latency(p50_ms=percentile(millis, 50), p95_ms=percentile(millis, 95))
    off = runs.get(row.off)
    if row.rerank and off is not None and off.results:
        report.lift = _lift(run, off)
    return report


def _query_reports(runs: Sequence[RowRun]) -> list[QueryReport]:
    return [QueryReport(id=r.query.id, line=r.query.line, tag=r.query.tag,
                        kind=run.row.kind, mode=run.row.mode,
                        weights=run.row.fusion_weights, rerank=run.row.rerank,
                        ids=r.answer.ids,
                        scores=r.scores, latency_ms=r.answer.seconds * 1000,
                        outcome=r.answer.outcome)
            for run in runs for r in run.results]


def chance_by_kind(queries: QuerySet, items: int) -> dict[str, Scores]:
    out = {}
    for kind in QueryKind:
        grades = [q.grades for q in queries.queries if q.kind is kind]
        if grades:
            out[kind.value] = Scores.mean([chance(g, items) for g in grades])
    return out


def summarize(queries: QuerySet, runs: Sequence[RowRun], target: str,
              catalogue_size: int | None) -> EvalReport:
    by_row = {run.row: run for run in runs}
    return EvalReport(
        queries_file=str(queries.path), target=target,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), catalogue_size=catalogue_size,
        depth=DEPTH, rows=[row_report(run, by_row) for run in runs],
        chance=chance_by_kind(queries, catalogue_size) if catalogue_size else {},
        queries=_query_reports(runs))


def find_row(report: EvalReport, kind: QueryKind, mode: Mode) -> RowReport | None:
    """The rerank-off row of a kind and mode with the server's fusion (None: not run)."""
    for row in report.rows:
        if (row.kind, row.mode, row.rerank, row.weights) == (kind.value, mode.value, False, None):
            return row
    return None
