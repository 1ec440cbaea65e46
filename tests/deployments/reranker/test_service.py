"""Reranker control flow with a scripted generate function (isolates fallback/caching logic;
the real vLLM engine is exercised in test_vllm_engine.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from PIL import Image

from deployments.reranker.service import Candidate, Reranker
from deployments.settings import RerankerSettings

SETTINGS = RerankerSettings(model="phi3v-test", timeout_s=1.0, grid_cell=64)


def candidates(k: int) -> list[Candidate]:
    return [Candidate(f"id{i}", Image.new("RGB", (20, 20), (i * 10, 0, 0))) for i in range(k)]


class Scripted:
    def __init__(self, *answers):
        self.answers, self.calls = list(answers), []

    async def __call__(self, prompt, picture, schema, max_tokens):
        self.calls.append((prompt, picture.size, schema))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await asyncio.sleep(10)
        return answer


def run(coro):
    return asyncio.run(coro)


def test_reranks_and_caches_the_folded_caption():
    scripted = Scripted(json.dumps({"caption": "a leopard", "scores": {"1": 1, "2": 9, "3": 5},
                                    "reason": "spots"}),
                        json.dumps({"scores": {"1": 9, "2": 1, "3": 5}, "reason": "r"}))
    reranker = Reranker(scripted, SETTINGS)
    query = Image.new("RGB", (30, 30), "yellow")
    first = run(reranker.rerank("a phone case with this", query, candidates(3)))
    assert first.reranked and first.order == ["id1", "id2", "id0"] and first.reason == "spots"
    assert first.caption == "a leopard" and not first.caption_cached
    assert "caption" in scripted.calls[0][2]["properties"]
    second = run(reranker.rerank("again", query, candidates(3)))
    assert second.caption_cached and second.order == ["id0", "id2", "id1"]
    assert "caption" not in scripted.calls[1][2]["properties"] and "a leopard" in scripted.calls[1][0]


def test_separate_caption_mode_makes_two_calls_once():
    scripted = Scripted('{"caption": "spots\x0b"}',
                        json.dumps({"scores": {"1": 1, "2": 2}, "reason": "r"}),
                        json.dumps({"scores": {"1": 2, "2": 1}, "reason": "r"}))
    reranker = Reranker(scripted, SETTINGS.model_copy(update={"caption_mode": "separate"}))
    query = Image.new("RGB", (30, 30), "yellow")
    first = run(reranker.rerank("q", query, candidates(2)))
    assert first.model_calls == 2 and first.caption == "spots"
    assert run(reranker.rerank("q", query, candidates(2))).model_calls == 1


@pytest.mark.parametrize(
    ("answer", "why"),
    [("hang", "longer than 1 s"), (RuntimeError("engine died"), "engine died"),
     ("no json at all", "unusable"), (json.dumps({"scores": {"7": 3}}), "unusable")],
)
def test_failures_fall_back_to_retrieval_order(answer, why):
    reranker = Reranker(Scripted(answer), SETTINGS)
    result = run(reranker.rerank("q", None, candidates(4)))
    assert not result.reranked and why in result.fallback
    assert result.order == ["id0", "id1", "id2", "id3"]


def test_text_only_query_and_trivial_cases():
    scripted = Scripted(json.dumps({"scores": {"1": 0, "2": 7}, "reason": "r"}))
    reranker = Reranker(scripted, SETTINGS)
    result = run(reranker.rerank("red mug", None, candidates(2)))
    assert result.reranked and result.order == ["id1", "id0"] and result.caption is None
    assert "QUERY" not in scripted.calls[0][0]
    assert run(reranker.rerank("x", None, candidates(1))).fallback == "one candidate"
    assert run(reranker.rerank("x", None, [])).order == []


def test_only_the_first_max_candidates_are_reranked():
    scripted = Scripted(json.dumps({"scores": {"1": 1, "2": 5, "3": 9}, "reason": "r"}))
    reranker = Reranker(scripted, SETTINGS.model_copy(update={"max_candidates": 3}))
    result = run(reranker.rerank("q", None, candidates(5)))
    assert result.reranked and result.order == ["id2", "id1", "id0", "id3", "id4"]
    assert scripted.calls[0][2]["properties"]["scores"]["required"] == ["1", "2", "3"]
    single_head = Reranker(Scripted(), SETTINGS.model_copy(update={"max_candidates": 1}))
    result = run(single_head.rerank("q", None, candidates(3)))
    assert result.order == ["id0", "id1", "id2"] and result.fallback == "one candidate"


def test_concurrent_requests_run_concurrently():
    class Slow:
        active = peak = 0

        async def __call__(self, prompt, picture, schema, max_tokens):
            Slow.active += 1
            Slow.peak = max(Slow.peak, Slow.active)
            await asyncio.sleep(0.2)
            Slow.active -= 1
            return json.dumps({"scores": {"1": 1, "2": 2}, "reason": "r"})

    reranker = Reranker(Slow(), SETTINGS)

    async def many():
        return await asyncio.gather(*[reranker.rerank("q", None, candidates(2)) for _ in range(8)])

    assert all(r.reranked for r in run(many())) and Slow.peak == 8
