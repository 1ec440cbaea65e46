"""Reranker latency and throughput on vLLM: one call (caption folded in) vs two calls.

    .venv/bin/python benchmarks/rerank_latency.py [--requests 16] [--k 9]
    # on a GPU, the real architecture with random weights: --model DIR --load-format dummy

Every request gets a fresh query image and fresh candidates (caches would flatter the
figures). Prints p50/p99 latency at concurrency 1 and 8, requests/s, and the share of answers
that were valid before any repair.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pardus.deployments.reranker.policy import RerankOutcome  # noqa: E402
from pardus.deployments.reranker.service import Candidate, Reranker  # noqa: E402

FALLBACKS = {o.value for o in RerankOutcome} - {RerankOutcome.RERANKED.value}
from pardus.deployments.settings import RerankerSettings  # noqa: E402
from pardus.ingest.samples import COLORS, PATTERNS, SHAPES, draw_product  # noqa: E402

console = Console()


def requests(n: int, k: int, seed: int):
    rng = random.Random(seed)

    def picture():
        return draw_product(rng.choice(list(SHAPES)), rng.choice(list(COLORS)),
                            rng.choice(PATTERNS), seed=rng.randrange(10**6), code=rng.randrange(4096))

    return [("a phone case with this", picture(),
             [Candidate(f"r{i}c{j}", picture()) for j in range(k)]) for i in range(n)]


async def measure(reranker: Reranker, batch, concurrency: int) -> tuple[np.ndarray, float]:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(text, image, candidates):
        async with semaphore:
            start = time.perf_counter()
            result = await reranker.rerank(text, image, candidates)
            assert sorted(result.order) == sorted(c.id for c in candidates)
            return time.perf_counter() - start

    start = time.perf_counter()
    latencies = await asyncio.gather(*[one(*request) for request in batch])
    return np.array(latencies), len(batch) / (time.perf_counter() - start)


async def run(settings: RerankerSettings, n: int, k: int, table: Table) -> None:
    from pardus.deployments.reranker.engine import VLLMGenerator

    started = time.perf_counter()
    generator = VLLMGenerator(settings)
    console.print(f"engine ready in {time.perf_counter() - started:.1f} s")
    seed = 0
    try:
        await Reranker(generator, settings).rerank(*requests(1, k, seed=999)[0])  # warm-up
        for mode in ("fold", "separate"):
            reranker = Reranker(generator, settings.model_copy(update={"caption_mode": mode}))
            for concurrency in (1, 8):
                seed += 1
                latencies, rate = await measure(reranker, requests(n, k, seed), concurrency)
                stats = reranker.stats
                valid = stats["answers_valid"] / max(1, stats["answers_valid"] + stats["answers_repaired"])
                table.add_row("1 call (caption folded)" if mode == "fold" else "2 calls (caption first)",
                              str(concurrency), f"{np.percentile(latencies, 50):.2f}",
                              f"{np.percentile(latencies, 99):.2f}", f"{rate:.2f}", f"{valid:.0%}",
                              str(sum(v for key, v in stats.items() if key in FALLBACKS)))
    finally:
        generator.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: a tiny random Phi-3-V)")
    parser.add_argument("--load-format", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--num-crops", type=int, default=1)
    args = parser.parse_args()
    model = args.model
    if model is None:
        from pardus.deployments.tiny.phi3v import write_tiny_phi3v

        model = str(write_tiny_phi3v(Path(tempfile.mkdtemp()) / "phi3v-tiny"))
    settings = RerankerSettings(model=model, load_format=args.load_format, dtype=args.dtype,
                                num_crops=args.num_crops, max_model_len=8192, timeout_s=300,
                                grid_cell=160, max_tokens=200)
    table = Table(title=f"rerank of {args.k} candidates, {args.requests} requests per row "
                        f"({Path(model).name}, num_crops {args.num_crops})")
    for column in ("method", "concurrency", "p50 s", "p99 s", "requests/s", "valid before repair",
                   "fallbacks"):
        table.add_column(column, justify="right")
    asyncio.run(run(settings, args.requests, args.k, table))
    console.print(table)


if __name__ == "__main__":
    main()
