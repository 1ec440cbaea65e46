"""vLLM's async engine as the reranker's `generate` coroutine (continuous batching).

Concurrent calls become concurrent engine requests, which vLLM batches on the fly; a call
that is cancelled (the reranker's timeout) aborts its request so it stops using the engine.
Only a replica that reranks imports this module (and vLLM with it).
"""

from __future__ import annotations

import logging
import os
import uuid

import torch
from PIL import Image
from vllm import AsyncEngineArgs, SamplingParams
from vllm.sampling_params import StructuredOutputsParams
from vllm.v1.engine.async_llm import AsyncLLM

from pardus.deployments.settings import RerankerSettings

log = logging.getLogger(__name__)


def engine_args(settings: RerankerSettings):
    """AsyncEngineArgs from settings (everything an operator tunes lives in RerankerSettings)."""
    return AsyncEngineArgs(
        model=settings.model,
        trust_remote_code=settings.trust_remote_code,
        dtype=settings.dtype,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs,
        limit_mm_per_prompt={"image": 1},
        mm_processor_kwargs={"num_crops": settings.num_crops},
        gpu_memory_utilization=settings.gpu_memory_utilization,
        load_format=settings.load_format,
        enforce_eager=settings.enforce_eager,
        disable_log_stats=True,
        # Compact JSON: without it a random-weight model pads answers with whitespace runs.
        structured_outputs_config={"backend": "xgrammar", "disable_any_whitespace": True},
    )


class VLLMGenerator:
    """`await generator(prompt, picture, schema, max_tokens)` -> the model's text."""

    def __init__(self, settings: RerankerSettings):
        if not torch.cuda.is_available():  # vLLM reads it when the engine starts, not before
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(settings.cpu_kv_cache_gib))
        self.settings = settings
        self.engine = AsyncLLM.from_engine_args(engine_args(settings))

    async def __call__(self, prompt: str, picture: Image.Image, schema: dict,
                       max_tokens: int) -> str:
        params = SamplingParams(
            temperature=0.0, max_tokens=max_tokens,
            structured_outputs=StructuredOutputsParams(json=schema),
        )
        request_id = uuid.uuid4().hex
        final = None
        try:
            async for output in self.engine.generate(
                {"prompt": prompt, "multi_modal_data": {"image": picture}}, params, request_id
            ):
                final = output
        except BaseException:  # cancelled (timeout) or failed: free the engine's slot
            await self.engine.abort(request_id)
            raise
        if final is None or not final.outputs:
            raise RuntimeError("the engine returned no output")
        return final.outputs[0].text

    async def check_health(self) -> None:
        await self.engine.check_health()

    def shutdown(self) -> None:
        self.engine.shutdown()
