"""Rows, lift, table and chart from scripted answers (a stand-in target isolates the logic:
which rows run, what each number is computed from)."""

from __future__ import annotations

import asyncio
import json
import math

import pytest
from rich.console import Console

from pardus.deployments.names import Fusion, Mode, QueryKind, RerankOutcome
from pardus.deployments.settings import Weights
from pardus.evaluation.chart import write_chart
from pardus.evaluation.pipeline import evaluate
from pardus.evaluation.queries import QuerySetError, parse_queries
from pardus.evaluation.report import find_row
from pardus.evaluation.runner import Row, plan_rows
from pardus.evaluation.show import legend, table
from pardus.evaluation.targets import Answer, Ask, TargetError
from pardus.ingest.samples import draw_product

CATALOGUE = {"a", "b", "c", "x", "y"}


class Scripted:
    """Answers from a script keyed by (query id, mode, rerank); every call takes 1 ms more."""

    name = "scripted"

    def __init__(self, script: dict, size: int | None = len(CATALOGUE)):
        self.script, self.size, self.calls, self.asked = script, size, 0, []

    async def search(self, query, ask: Ask) -> Answer:
        self.calls += 1
        self.asked.append((query.id, ask))
        ids = self.script.get((query.id, ask.mode.value, ask.rerank), ["y"])
        fusion = Fusion.RRF if ask.mode is Mode.HYBRID else None
        outcome = RerankOutcome.RERANKED if ask.rerank else RerankOutcome.OFF
        return Answer(ids, self.calls / 1000, fusion, outcome,
                      repaired=ask.rerank and query.id == "t2")

    async def missing(self, ids):
        return set(ids) - CATALOGUE

    async def catalogue_size(self):
        return self.size

    async def close(self):
        pass


@pytest.fixture()
def queries(tmp_path):
    draw_product("bag", "pink", "plain", size=64).save(tmp_path / "bag.jpg")
    lines = [{"id": "t1", "text": "a", "relevant": ["a"]},
             {"id": "t2", "text": "b", "relevant": {"b": 2, "c": 1}},
             {"id": "i1", "image": "bag.jpg", "relevant": ["a"]}]
    path = tmp_path / "set.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines))
    return parse_queries(path)


SCRIPT = {("t1", "hybrid", False): ["x", "a"], ("t1", "hybrid", True): ["a", "x"],
          ("t2", "hybrid", False): ["b", "c"], ("t2", "hybrid", True): ["c", "b"],
          ("t1", "lexical", False): ["a"], ("i1", "dense", False): ["a", "b"]}


def test_rows_cover_kinds_modes_weights_and_rerank():
    rows = plan_rows([QueryKind.TEXT, QueryKind.IMAGE], weights=[Weights(dense=1, lexical=0.5)],
                     rerank=True)
    text = [(r.mode.value, r.weights, r.rerank) for r in rows if r.kind is QueryKind.TEXT]
    assert text == [("dense", None, False), ("dense", None, True),
                    ("lexical", None, False), ("lexical", None, True),
                    ("hybrid", None, False), ("hybrid", None, True),
                    ("hybrid", (1.0, 0.5), False), ("hybrid", (1.0, 0.5), True)]
    image = [(r.mode.value, r.applicable) for r in rows if r.kind is QueryKind.IMAGE]
    assert image == [("dense", True), ("dense", True), ("lexical", False), ("hybrid", False)]
    composed = plan_rows([QueryKind.COMPOSED])
    assert [(r.mode.value, r.applicable) for r in composed] == [
        ("dense", True), ("lexical", False), ("hybrid", True)]  # lexical would drop the picture
    assert Row(QueryKind.TEXT, Mode.HYBRID, (1.0, 0.5), True).off.rerank is False


def run(target, queries, rows):
    return asyncio.run(evaluate(target, queries, rows, "the catalogue 'test'"))


def test_metrics_latency_and_lift_per_row(queries):
    target = Scripted(SCRIPT)
    report = run(target, queries, plan_rows(queries.kinds(), rerank=True))
    # text: 3 modes x off/on, image: dense off/on; each row one untimed search first
    assert target.calls == (2 * 3 * 2 + 2) + 8
    assert {ask.k for _, ask in target.asked} == {10}
    hybrid = find_row(report, QueryKind.TEXT, Mode.HYBRID)
    assert hybrid.fusion == "rrf" and hybrid.queries == 2
    # t1: a at rank 2 (nDCG 1/log2(3)); t2: ideal order (1.0)
    assert hybrid.scores.ndcg_10 == pytest.approx((1 / math.log2(3) + 1) / 2)
    assert hybrid.scores.recall_1 == pytest.approx(0.25)  # t1: 0, t2: b of {b, c}: 1/2
    assert hybrid.scores.mrr == pytest.approx(0.75)
    reranked = next(r for r in report.rows if (r.kind, r.mode, r.rerank) == (
        "text", "hybrid", True))
    # t1 rises to 1.0 (+0.369), t2 falls to 0.8597 (-0.140)
    up, down = 1 - 1 / math.log2(3), (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)) - 1
    assert reranked.lift.delta_ndcg_10 == pytest.approx((up + down) / 2)
    assert (reranked.lift.helped, reranked.lift.hurt, reranked.lift.unchanged) == (0.5, 0.5, 0)
    assert (reranked.lift.reranked, reranked.lift.repaired) == (1.0, 0.5)
    assert hybrid.lift is None
    lexical = find_row(report, QueryKind.TEXT, Mode.LEXICAL)
    assert lexical.scores.recall_10 == 0.5  # t2 got only "y"
    assert lexical.latency.p50_ms < lexical.latency.p95_ms
    image_lexical = find_row(report, QueryKind.IMAGE, Mode.LEXICAL)
    assert not image_lexical.applicable and image_lexical.scores is None
    assert report.chance["text"].recall_10 == 1.0  # 5 items: everything is in the first 10
    assert len(report.queries) == 14 and {q.outcome for q in report.queries} == {"off",
                                                                                 "reranked"}


def test_the_table_legend_and_chart(queries, tmp_path):
    report = run(Scripted(SCRIPT), queries, plan_rows(queries.kinds(), rerank=True))
    console = Console(record=True, width=220)
    console.print(table(report))
    cells = [[cell.strip() for cell in line.split("│")[1:-1]]
             for line in console.export_text().splitlines() if line.startswith("│")]
    assert ["image", "lexical", "off", "-", *["n/a"] * 7, "", ""] in cells
    assert ["text", "hybrid rrf", "on", "2", "0.750", "1.000", "1.000", "0.930", "1.000", "18",
            "18", "+0.114", "50% / 50%"] in cells
    assert ["text", "chance", "", "", "0.200", "1.000", "1.000"] == cells[6][:7]
    lines = legend(report)
    assert any("R@10 = 10/5" in line for line in lines)
    assert any("had to repair" in line and "text hybrid rrf 50%" in line for line in lines)
    chart = write_chart(report, tmp_path / "out" / "report.png")
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = report.write(tmp_path / "out" / "report.json")
    assert json.loads(saved.read_text())["rows"][0]["kind"] == "text"


def test_a_narrow_terminal_wraps_the_figures_never_cuts_them(queries):
    """On a terminal, rich fits the table to the window: the figures' cells wrap instead of
    ending in `…` (the labels may)."""
    report = run(Scripted(SCRIPT), queries, plan_rows(queries.kinds(), rerank=True))
    console = Console(record=True, width=80, force_terminal=True)
    console.print(table(report))
    figures = [cell for line in console.export_text().splitlines() if line.startswith("│")
               for cell in line.split("│")[3:-1]]
    assert figures and not [cell for cell in figures if "…" in cell]


def test_unknown_ids_and_an_empty_catalogue_stop_before_searching(tmp_path, queries):
    path = tmp_path / "unknown.jsonl"
    path.write_text('{"text": "a", "relevant": ["a"]}\n{"text": "b", "relevant": ["zz"]}\n')
    target = Scripted(SCRIPT)
    with pytest.raises(QuerySetError, match=r"unknown.jsonl:2: relevant: unknown item id 'zz' "
                                            r"\(not in the catalogue 'test'\)"):
        run(target, parse_queries(path), plan_rows([QueryKind.TEXT]))
    with pytest.raises(TargetError, match="empty"):
        run(Scripted(SCRIPT, size=0), queries, plan_rows([QueryKind.TEXT]))
    assert target.calls == 0
