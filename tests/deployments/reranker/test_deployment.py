"""The reranker as a Ray Serve deployment on a real local Ray, with a real vLLM engine."""

from __future__ import annotations

import asyncio
import io
import random

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed (pip install -e '.[cpu]')")

from pardus.deployments.names import RerankOutcome  # noqa: E402
from pardus.deployments.reranker.policy import RerankRequest, RerankResult  # noqa: E402
from pardus.deployments.tiny.phi3v import write_tiny_phi3v  # noqa: E402
from pardus.ingest.samples import draw_product  # noqa: E402


def jpeg(seed: int) -> bytes:
    rng = random.Random(seed)
    buf = io.BytesIO()
    draw_product(rng.choice(["mug", "bag"]), rng.choice(["red", "blue"]), "dotted",
                 seed=seed, code=seed).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def reranker_handle(serve_local, tmp_path_factory):
    from pardus.deployments.reranker.deployment import RerankerDeployment

    serve = serve_local

    folder = write_tiny_phi3v(tmp_path_factory.mktemp("phi3v") / "phi3v-tiny")
    settings = {"model": str(folder), "dtype": "float32", "max_model_len": 4096, "num_crops": 1,
                "enforce_eager": True, "timeout_s": 60, "grid_cell": 96, "max_tokens": 160}
    app = RerankerDeployment.options(ray_actor_options={"num_cpus": 0.5}).bind({"reranker": settings})
    handle = serve.run(app, name="reranker-test", route_prefix=None)
    yield handle
    serve.delete("reranker-test")


def test_concurrent_reranks_through_serve(reranker_handle):
    candidates = [[(f"q{q}c{j}", jpeg(q * 10 + j)) for j in range(5)] for q in range(6)]

    async def many():
        responses = [reranker_handle.rerank.remote(
            RerankRequest("a mug like this", jpeg(100 + q), cands))
            for q, cands in enumerate(candidates)]
        return await asyncio.gather(*responses)

    results = asyncio.run(many())
    for cands, result in zip(candidates, results):
        assert isinstance(result, RerankResult) and result.reranked, result.outcome
        assert sorted(result.order) == sorted(cid for cid, _ in cands)
        assert result.model_calls == 1 and result.seconds > 0
    stats = reranker_handle.stats.remote().result()
    assert stats["answers_valid"] + stats.get("answers_repaired", 0) == len(candidates)


def test_text_only_and_missing_images(reranker_handle):
    request = RerankRequest("red mug", None, [("a", jpeg(1)), ("b", None), ("c", b"not a jpeg")])
    result = reranker_handle.rerank.remote(request).result()
    assert sorted(result.order) == ["a", "b", "c"] and result.reranked  # grey cells for b, c


def test_the_budget_a_request_carries_bounds_the_model_call(reranker_handle):
    """The search owns the rerank deadline: a request with (almost) nothing left of it comes
    back in its own order, flagged, and the replica answers the next one as usual."""
    cands = [(f"b{j}", jpeg(200 + j)) for j in range(4)]
    late = reranker_handle.rerank.remote(RerankRequest("a mug", None, cands, budget_s=0.001))
    result = late.result()
    assert result.outcome is RerankOutcome.TIMEOUT and result.order == [c for c, _ in cands]
    again = reranker_handle.rerank.remote(RerankRequest("a mug", None, cands, budget_s=60))
    assert again.result().reranked
