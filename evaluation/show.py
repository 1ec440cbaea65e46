"""The report for people: a rich table (one row per kind x mode x rerank, chance beside) and
the lines that say what each number means."""

from __future__ import annotations

from rich.table import Table

from pardus.evaluation.metrics import SCORE_NAMES, Scores
from pardus.evaluation.report import EvalReport, RowReport

HEADERS = ("R@1", "R@5", "R@10", "nDCG@10", "MRR")
NA = "n/a"


def _scores(scores: Scores | None) -> list[str]:
    if scores is None:
        return [NA] * len(SCORE_NAMES)
    return [f"{getattr(scores, name):.3f}" for name in SCORE_NAMES]


def _lift(row: RowReport) -> list[str]:
    if row.lift is None:
        return ["", ""]
    lift = row.lift
    return [f"{lift.delta_ndcg_10:+.3f}", f"{lift.helped:.0%} / {lift.hurt:.0%}"]


def _cells(row: RowReport) -> list[str]:
    rerank = "on" if row.rerank else "off"
    if not row.applicable:
        return [row.kind, row.label, rerank, "-", *_scores(None), NA, NA, "", ""]
    latency = row.latency
    timing = [f"{latency.p50_ms:.0f}", f"{latency.p95_ms:.0f}"] if latency else ["", ""]
    return [row.kind, row.label, rerank, str(row.queries), *_scores(row.scores), *timing,
            *_lift(row)]


def table(report: EvalReport) -> Table:
    """One row per kind x mode (x weights) x rerank; each kind's chance level after it."""
    out = Table(title=f"relevance of {report.queries_file} ({report.target})")
    for name in ("kind", "mode", "rerank", "queries", *HEADERS, "p50 ms", "p95 ms",
                 "ΔnDCG@10", "helped/hurt"):
        label = name in ("kind", "mode")
        # a terminal too narrow for the table wraps a figure, never cuts it to `0.…`
        out.add_column(name, justify="left" if label else "right",
                       overflow="ellipsis" if label else "fold")
    kinds = list(dict.fromkeys(row.kind for row in report.rows))
    for n, kind in enumerate(kinds):
        if n:
            out.add_section()
        for row in report.rows:
            if row.kind == kind:
                out.add_row(*_cells(row))
        if kind in report.chance:
            out.add_row(kind, "chance", "", "", *_scores(report.chance[kind]), "", "", "", "",
                        style="dim")
    return out


def legend(report: EvalReport) -> list[str]:
    """What each number means, and the chance level of this catalogue."""
    lines = [
        (f"Each row: the queries of one kind, searched in one mode, {report.depth} results "
         "asked; metrics are means over those queries."),
        ("R@k: the share of a query's relevant items among the first k results (with one "
         "relevant item: whether it was found). nDCG@10: the graded gains of the first 10, "
         "discounted by rank, against the ideal order (1 = ideal). MRR: 1 / the rank of the "
         "first relevant result (0 when none came back)."),
        ("p50/p95 ms: the search call as the caller waits for it (embedding, Milvus, "
         "reranking; HTTP too over the service), median and 95th percentile."),
        ("ΔnDCG@10: reranked minus not reranked, the same queries, mean; helped/hurt: the "
         "share of queries whose nDCG@10 rose / fell. n/a: a picture alone has no words for "
         "lexical or hybrid search."),
    ]
    if report.catalogue_size:
        n = report.catalogue_size
        lines.append(f"chance: a random ranking of the {n} items scores R@10 = 10/{n} = "
                     f"{min(10, n) / n:.3f} (nDCG and MRR per kind in its 'chance' row).")
    else:
        lines.append("chance: unknown (the catalogue's size is not known over HTTP: pass "
                     "--catalogue-size).")
    repaired = [row for row in report.rows if row.lift is not None and row.lift.repaired]
    if repaired:
        shares = ", ".join(f"{row.kind} {row.label} {row.lift.repaired:.0%}" for row in repaired)
        lines.append(f"Reranked answers the service had to repair (the model's ranking missed "
                     f"or invented candidates, kept in retrieval order): {shares}.")
    for row in report.rows:
        if row.lift is not None and row.lift.not_reranked:
            why = ", ".join(f"{outcome} {n}" for outcome, n in sorted(
                row.lift.not_reranked.items()))
            lines.append(f"{row.kind} {row.label}: {row.lift.reranked:.0%} of the answers "
                         f"were reranked, the rest kept the retrieval order ({why}).")
    return lines
