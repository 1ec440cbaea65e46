"""Rerank retrieved candidates with a vision-language model; never raise, always answer.

Plain asyncio code: the Serve deployment (and the tests) hand it a `generate` coroutine. Any
timeout, engine error or unusable answer gives the retrieval order back with
`reranked=False` and the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Sequence

from PIL import Image

from deployments.reranker.answer import UnusableAnswer, parse_answer, parse_caption, response_schema
from deployments.reranker.grid import compose
from deployments.reranker.prompts import RerankPrompt, prompt_format
from deployments.settings import RerankerSettings

log = logging.getLogger(__name__)

# (prompt text, picture, JSON schema, max new tokens) -> the model's text
Generate = Callable[[str, Image.Image, dict, int], Awaitable[str]]


@dataclass
class Candidate:
    id: str
    image: Image.Image | None  # None: the image could not be loaded (a grey cell)


@dataclass
class RerankResult:
    order: list[str]  # candidate ids, best first; always every candidate exactly once
    reranked: bool
    reason: str = ""  # why the first one fits (from the model)
    fallback: str | None = None  # why the retrieval order was kept
    repairs: list[str] = field(default_factory=list)
    caption: str | None = None
    caption_cached: bool = False
    model_calls: int = 0
    seconds: float = 0.0


class CaptionCache:
    """Captions of query images by content hash (LRU)."""

    def __init__(self, size: int):
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()

    @staticmethod
    def key(image: Image.Image) -> str:
        digest = hashlib.sha256(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
        return digest.hexdigest()

    def get(self, key: str) -> str | None:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        return None

    def put(self, key: str, caption: str) -> None:
        if self.size <= 0 or not caption:
            return
        self._items[key] = caption
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class Reranker:
    """Grid + prompt + structured answer + validation, around any `generate` coroutine."""

    def __init__(self, generate: Generate, settings: RerankerSettings):
        self.generate = generate
        self.settings = settings
        self.format = prompt_format(settings.model, settings.prompt_format)
        self.captions = CaptionCache(settings.caption_cache_size)
        self.stats: Counter = Counter()  # answers_valid, answers_repaired, fallback_<why>

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
            key = self.captions.key(query_image)
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
        result.reranked, result.reason, result.repairs = True, parsed.reason, parsed.repairs
        result.caption = caption
        self.stats["answers_valid" if parsed.valid else "answers_repaired"] += 1

    async def rerank(self, query_text: str, query_image: Image.Image | None,
                     candidates: Sequence[Candidate]) -> RerankResult:
        """All candidates, best first; the retrieval order (flagged) when anything fails."""
        start = time.perf_counter()
        # Past max_candidates the grid would be unreadable: rerank the head, keep the tail.
        tail = [c.id for c in candidates[self.settings.max_candidates:]]
        candidates = candidates[: self.settings.max_candidates]
        result = RerankResult(order=[c.id for c in candidates], reranked=False)
        if len(candidates) < 2:
            result.fallback = "nothing to rerank" if not candidates else "one candidate"
        else:
            try:
                await asyncio.wait_for(self._rank(query_text, query_image, candidates, result),
                                       timeout=self.settings.timeout_s)
            except asyncio.TimeoutError:
                result.fallback = f"the reranker took longer than {self.settings.timeout_s:g} s"
                self.stats["fallback_timeout"] += 1
            except UnusableAnswer as exc:
                result.fallback = f"the reranker's answer was unusable: {exc}"
                self.stats["fallback_unusable"] += 1
            except Exception as exc:  # an engine failure must not fail the search
                log.warning("reranker failed: %s", exc, exc_info=True)
                result.fallback = f"the reranker failed: {type(exc).__name__}: {exc}"[:300]
                self.stats["fallback_error"] += 1
            if result.fallback:
                result.order, result.reranked = [c.id for c in candidates], False
        result.order += tail
        result.seconds = time.perf_counter() - start
        return result
