"""`pardus eval` for real: a generated benchmark ingested with the tiny models and measured in
process, the session's service over HTTP (same ids as in process, rerank lift), and bad query
sets that exit 2 naming the line."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pardus.deployments.catalogue import lite_server
from pardus.deployments.settings import Settings, Weights
from pardus.evaluation.pipeline import evaluate
from pardus.evaluation.queries import parse_queries
from pardus.evaluation.report import EvalReport
from pardus.evaluation.runner import plan_rows
from pardus.evaluation.show import _cells as cells
from pardus.evaluation.targets import HttpTarget, InProcessTarget
from tests.support.cli import core_processes, documented_to_outlive, invoke
from tests.support.service import API_KEY, REQUEST_LIMIT

ITEMS, QUERIES = 120, 60  # the CI-sized benchmark: 20 queries of each kind


@dataclass
class Generated:
    folder: Path
    env: dict[str, str]
    output: str
    exit_code: int


@pytest.fixture(scope="module")
def generated(ray_local, tmp_path_factory):
    """`pardus eval --generate` without real weights (so with the tiny models), once."""
    work = tmp_path_factory.mktemp("eval")
    env = {"PARDUS_EMBEDDER__CHECKPOINT": str(work / "missing.pth"),
           "PARDUS_MILVUS__URI": str(work / "eval.db")}
    with pytest.MonkeyPatch.context() as patch:
        result = invoke(["eval", "--generate", str(work / "bench"), "--items", str(ITEMS),
                         "--queries", str(QUERIES)], env, patch)
    yield Generated(work / "bench", env, result.output, result.exit_code)
    lite_server.stop(work / "eval.db")


def test_generate_draws_ingests_and_says_what_to_run(generated):
    assert generated.exit_code == 0, generated.output[-3000:]
    output = generated.output
    assert "Using a tiny Visualized BGE" in output and "only the lexical rows mean" in output
    assert f"{ITEMS} items, {QUERIES} queries (20 text, 20 image, 20 composed)" in output
    queries = generated.folder / "queries.jsonl"
    assert f"pardus eval {queries} --in-process --collection eval --tiny" in output
    pictures = len(list((generated.folder / "images").glob("*.jpg")))
    assert pictures > ITEMS
    assert re.search(rf"indexed now\s+│\s+{ITEMS} │\s+{pictures} │", output)
    assert "10/120 = 0.083" in (generated.folder / "README.md").read_text()
    outlived = bool(core_processes(Path(generated.env["PARDUS_MILVUS__URI"])))
    assert outlived == documented_to_outlive("pardus eval")


def random_band(queries: list[dict], items: int, trials: int = 20_000) -> tuple[float, float]:
    """The 0.1th and 99.9th percentiles of mean recall@10 over these queries when every
    ranking is drawn at random from the catalogue (hypergeometric draws, a fixed seed)."""
    rng = np.random.default_rng(0)
    runs = []
    for query in queries:
        relevant = sum(1 for gain in query["relevant"].values() if gain > 0)
        runs.append(rng.hypergeometric(relevant, items - relevant, 10, size=trials) / relevant)
    low, high = np.percentile(np.mean(runs, axis=0), [0.1, 99.9])
    return float(low), float(high)


def test_tiny_models_lexical_signal_and_dense_near_chance(generated, monkeypatch):
    """With random weights, words carry the signal: lexical and hybrid recall@10 on attribute
    queries sit above anything a random ranking reaches, dense inside the random band."""
    report_path = generated.folder.parent / "report.json"
    result = invoke(["eval", str(generated.folder / "queries.jsonl"), "--in-process", "--tiny",
                     "--collection", "eval", "--report", str(report_path)],
                    {**generated.env, "COLUMNS": "80"}, monkeypatch)
    assert result.exit_code == 0, result.output[-3000:]
    assert "relevance of" in result.output
    assert "chance: a random ranking of the 120" in result.output
    assert "Measured with a tiny random-weight embedder" in result.output
    assert report_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    # the table as a pipe or a file gets it (no terminal): every figure of the report in full
    printed = [[cell.strip() for cell in line.split("│")[1:-1]]
               for line in result.output.splitlines() if line.startswith("│")]
    measured = EvalReport.model_validate_json(report_path.read_text())
    assert "…" not in result.output
    assert all(cells(row) in printed for row in measured.rows)
    report = json.loads(report_path.read_text())
    assert report["catalogue_size"] == ITEMS
    lines = [json.loads(line) for line in (generated.folder / "queries.jsonl").open()]
    attributes = {q["id"]: q for q in lines if q["tag"] == "attributes"}
    low, high = random_band(list(attributes.values()), ITEMS)

    def recall(mode: str) -> float:
        found = [q["scores"]["recall_10"] for q in report["queries"] if q["id"] in attributes
                 and q["mode"] == mode and q["weights"] is None and not q["rerank"]]
        assert len(found) == len(attributes) == 10
        return sum(found) / len(found)

    assert high < 0.3  # what random retrieval cannot reach
    assert recall("lexical") > 0.9 and recall("hybrid") > high + 0.1
    assert low <= recall("dense") <= high
    rows = {(r["kind"], r["mode"]): r for r in report["rows"] if r["weights"] is None}
    assert rows["image", "lexical"]["applicable"] is False
    assert rows["text", "hybrid"]["fusion"] == "rrf"
    assert rows["composed", "hybrid"]["fusion"] == "weighted"


def sample_queries(folder: Path, catalogue: Path) -> Path:
    items = [json.loads(line) for line in (catalogue / "items.jsonl").open()]
    lines = [{"id": f"t{n}", "text": item["title"], "relevant": [item["parent_asin"]]}
             for n, item in enumerate(items[:4])]
    lines += [{"id": f"i{n}", "image": str(catalogue / item["images"][-1]["large"]),
               "relevant": [item["parent_asin"]]} for n, item in enumerate(items[4:7])]
    lines += [{"id": f"c{n}", "image": str(catalogue / item["images"][0]["large"]),
               "text": "the same in blue", "relevant": [item["parent_asin"]]}
              for n, item in enumerate(items[7:10])]
    path = folder / "sample.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_http_and_in_process_give_the_same_ids(service_url, service_settings,
                                               sample_catalogue, tmp_path):
    queries = parse_queries(sample_queries(tmp_path, sample_catalogue))
    rows = plan_rows(queries.kinds(), weights=[Weights(dense=1, lexical=0.5)])

    def measure(target):
        return asyncio.run(evaluate(target, queries, rows, "the sample catalogue"))

    local = measure(InProcessTarget(Settings(**service_settings)))
    remote = measure(HttpTarget(service_url, API_KEY))
    def answers(report):
        return {(q.id, q.mode, str(q.weights)): q.ids for q in report.queries}

    # text in 4 modes, image in one, composed in 3 (lexical would drop its picture: n/a)
    assert len(answers(local)) == 4 * 4 + 3 + 3 * 3
    assert answers(local) == answers(remote)
    assert local.catalogue_size == 24 and remote.catalogue_size is None


def test_rerank_lift_through_the_service(service_url, sample_catalogue, tmp_path, monkeypatch):
    path = sample_queries(tmp_path, sample_catalogue)
    result = invoke(["eval", str(path), "--url", service_url, "--api-key", API_KEY, "--rerank",
                     "--kind", "text", "--mode", "hybrid", "--catalogue-size", "24"], {},
                    monkeypatch)
    assert result.exit_code == 0, result.output[-3000:]
    report = json.loads((tmp_path / "eval-report.json").read_text())
    on = next(row for row in report["rows"] if row["rerank"])
    assert [(r["mode"], r["rerank"]) for r in report["rows"]] == [("hybrid", False),
                                                                  ("hybrid", True)]
    lift = on["lift"]
    assert lift["helped"] + lift["hurt"] + lift["unchanged"] == pytest.approx(1.0)
    assert lift["reranked"] + sum(lift["not_reranked"].values()) / 4 == pytest.approx(1.0)
    assert "ΔnDCG@10" in result.output and on["latency"]["p50_ms"] > 0


def test_bad_query_sets_exit_2_and_name_the_line(service_url, tmp_path, monkeypatch):
    def run(lines: list[str], *extra: str):
        path = tmp_path / "bad.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return invoke(["eval", str(path), "--url", service_url, *extra], {}, monkeypatch)

    good = '{"text": "mug", "relevant": ["SAMPLE00001"]}'
    for lines, expected in [
        ([good, '{"text": "bag", "relevant": ["SAMPLE00003", "NOPE1"]}'],
         "bad.jsonl:2: relevant: unknown item id 'NOPE1' (not in the catalogue"),
        ([good, '{"image": "missing.jpg", "relevant": ["SAMPLE00003"]}'],
         "bad.jsonl:2: image: image file not found"),
        (['{"text": "mug", "relevant": ["SAMPLE00001"]'], "bad.jsonl:1: not JSON"),
        ([good, '{"relevant": ["SAMPLE00001"]}'], "bad.jsonl:2: a query needs a text"),
    ]:
        result = run(lines)
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.output.split()) and "Traceback" not in result.output
    side = int((REQUEST_LIMIT / 3) ** 0.5) + 100  # noise: a PNG over the service's limit
    noise = np.random.default_rng(0).integers(0, 255, (side, side, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "huge.png")
    refused = run([good, '{"image": "huge.png", "relevant": ["SAMPLE00003"]}'])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    said = " ".join(refused.output.split())
    assert "bad.jsonl:2: the service refused query 'line-2': the request is over the limit" in said
    assert run([good], "--in-process", "--rerank").exit_code == 2
    assert run([good], "--weights", "1:7").exit_code == 2
    gone = invoke(["eval", str(tmp_path / "bad.jsonl"), "--url", "http://127.0.0.1:8159"], {},
                  monkeypatch)
    assert gone.exit_code == 1 and "no Pardus service answers at" in gone.output


def test_generate_refuses_a_shop_catalogue(service_settings, service_url, tmp_path, tiny_model,
                                           monkeypatch):
    milvus = service_settings["milvus"]
    result = invoke(["eval", "--generate", str(tmp_path / "bench"), "--milvus-uri",
                     milvus["uri"], "--collection", milvus["collection"]], tiny_model,
                    monkeypatch)
    assert result.exit_code == 2
    assert "holds 24 items that are not a generated benchmark" in result.output
    assert not (tmp_path / "bench").exists()
