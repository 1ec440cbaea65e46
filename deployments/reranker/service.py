"""Rerank retrieved candidates with a vision-language model; never raise, always answer.

Plain asyncio code: the Serve deployment (and the tests) hand it a `generate` coroutine. Any
timeout, engine error or unusable answer gives the retrieval order back, with the outcome
(names.RerankOutcome) that says why. The deadline is the caller's (RerankPolicy): a call gets
the time left of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, Sequence

from PIL import Image

from pardus.deployments.caches import LruCache
from pardus.deployments.names import RerankOutcome
from pardus.deployments.reranker.answer import (
    UnusableAnswer,
    parse_answer,
    parse_caption,
    response_schema,
)
from pardus.deployments.reranker.grid import compose
from pardus.deployments.reranker.policy import RerankPolicy, RerankResult
from pardus.deployments.reranker.prompts import RerankPrompt, plain_text, prompt_format
from pardus.deployments.settings import RerankerSettings

log = logging.getLogger(__name__)

# (prompt text, picture, JSON schema, max new tokens) -> the model's text
Generate = Callable[[str, Image.Image, dict, int], Awaitable[str]]


@dataclass
class Candidate:
    id: str
    image: Image.Image | None  # None: the image could not be loaded (a grey cell)


class CaptionCache(LruCache):
    """Captions of query images by what produced them (LRU)."""

    @staticmethod
    def key(image: Image.Image, text: str = "") -> str:
        """What produced a caption: the picture, and the text the model read beside it (in
        fold mode the caption comes with the ranking, which reads the shopper's words: keyed
        by the picture alone, one shopper's text could plant what others see)."""
        digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
        digest.update(b"\x00" + plain_text(text).encode())
        return digest.hexdigest()

    def put(self, key: str, caption: str) -> None:
        if caption:  # no caption is not worth keeping
            super().put(key, caption)


class Reranker:
    """Grid + prompt + structured answer + validation, around any `generate` coroutine."""

    def __init__(self, generate: Generate, settings: RerankerSettings):
        self.generate = generate
        self.settings = settings
        self.format = prompt_format(settings.model, settings.prompt_format)
        self.captions = CaptionCache(settings.caption_cache_size)
        self.policy = RerankPolicy(settings)
        self.stats: Counter = Counter()  # answers_valid, answers_repaired, and per outcome

    async def _caption_call(self, image: Image.Image) -> str:
        """The separate caption call ("two calls" mode)."""
        text = self.format("Describe this picture in one short sentence. Answer with JSON only.")
        schema = {"type": "object", "properties": {"caption": {"type": "string", "minLength": 1,
                  "maxLength": 160}}, "required": ["caption"], "additionalProperties": False}
        raw = await self.generate(text, image, schema, self.settings.caption_max_tokens)
        return parse_caption(raw)

    async def _rank(self, query_text: str, query_image: Image.Image | None,
                    candidates: Sequence[Candidate], result: RerankResult) -> None:
        caption, key = None, None
        if query_image is not None:
            fold = self.settings.caption_mode == "fold"
            key = self.captions.key(query_image, query_text if fold else "")
            caption = self.captions.get(key)
            result.caption_cached = caption is not None
            if caption is None and self.settings.caption_mode == "separate":
                caption = await self._caption_call(query_image)
                result.model_calls += 1
                self.captions.put(key, caption)
        ask_caption = query_image is not None and caption is None
        prompt = RerankPrompt(query_text, caption, query_image is not None, len(candidates),
                              ask_caption)
        picture = await asyncio.to_thread(
            compose, query_image, [c.image for c in candidates], self.settings.grid_cell
        )
        raw = await self.generate(self.format(prompt.instruction()), picture,
                                  response_schema(len(candidates), ask_caption),
                                  self.settings.max_tokens)
        result.model_calls += 1
        parsed = parse_answer(raw, len(candidates))
        if ask_caption and parsed.caption and key is not None:
            caption = parsed.caption  # already cleaned by parse_answer
            self.captions.put(key, caption)
        result.order = [candidates[i].id for i in parsed.order]
        result.reason, result.repairs = parsed.reason, parsed.repairs
        result.caption = caption
        self.stats["answers_valid" if parsed.valid else "answers_repaired"] += 1

    async def rerank(self, query_text: str, query_image: Image.Image | None,
                     candidates: Sequence[Candidate],
                     budget_s: float | None = None) -> RerankResult:
        """All candidates (2 to max_candidates: the policy picks them), best first; the
        retrieval order with the outcome that says why, when anything fails. budget_s: the time
        left of the caller's deadline (None: none)."""
        self.policy.check_head(len(candidates))
        start = time.perf_counter()
        ids = [c.id for c in candidates]
        result = RerankResult(order=ids, outcome=RerankOutcome.RERANKED)
        try:
            await asyncio.wait_for(self._rank(query_text, query_image, candidates, result),
                                   timeout=budget_s)
        except asyncio.TimeoutError:
            result.outcome = RerankOutcome.TIMEOUT
        except UnusableAnswer as exc:
            log.warning("reranker answer unusable: %s", exc)
            result.outcome = RerankOutcome.UNUSABLE
        except Exception as exc:  # an engine failure must not fail the search
            log.warning("reranker failed: %r", exc, exc_info=True)
            result.outcome = RerankOutcome.ERROR
        if not result.reranked:
            result.order = ids
        self.stats[result.outcome.value] += 1
        result.seconds = time.perf_counter() - start
        return result
