"""What the reranker asks the model to return, and the checks that make every answer complete.

The answer is a JSON object with one score per candidate under fixed keys "1".."k" (JSON
Schema cannot force a permutation: no uniqueItems in either vLLM backend, so the schema makes
completeness structural instead), a reason for the best one, and optionally a caption of the
query image. Whatever comes back, `parse_answer` returns a complete ordering of the k
candidates, repairs deterministically what is missing or invented, and says what it repaired.
A plain `ranking` list is accepted too (other prompts, other models), with the same repair.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from pardus.deployments.reranker.prompts import plain_text

MAX_SCORE = 10
REASON_MAX = 240
CAPTION_MAX = 160


class UnusableAnswer(ValueError):
    """Nothing in the answer can order the candidates: the caller keeps retrieval order."""


def response_schema(k: int, with_caption: bool) -> dict:
    """JSON Schema for structured outputs: every candidate gets a score, under its number."""
    scores = {
        "type": "object",
        "properties": {str(i): {"type": "integer", "minimum": 0, "maximum": MAX_SCORE}
                       for i in range(1, k + 1)},
        "required": [str(i) for i in range(1, k + 1)],
        "additionalProperties": False,
    }
    properties: dict = {}
    if with_caption:  # first: describe the query picture, then judge
        properties["caption"] = {"type": "string", "minLength": 1, "maxLength": CAPTION_MAX}
    properties["scores"] = scores
    properties["reason"] = {"type": "string", "minLength": 1, "maxLength": REASON_MAX}
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


@dataclass
class ParsedAnswer:
    order: list[int]  # 0-based candidate positions, a complete permutation of range(k)
    reason: str
    caption: str | None = None
    repairs: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """The model's answer was complete and consistent before any repair."""
        return not self.repairs


def _as_int(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,6}", value.strip()):
        return int(value.strip())
    return None


def _order_from_scores(scores: dict, k: int, repairs: list[str]) -> list[int]:
    """Order by score; raises UnusableAnswer when no candidate got a usable score."""
    given: dict[int, int] = {}
    for key, value in scores.items():
        number, score = _as_int(key), _as_int(value)
        if number is None or not 1 <= number <= k:
            repairs.append(f"dropped score for unknown candidate {key!r}")
            continue
        if score is None or not 0 <= score <= MAX_SCORE:
            repairs.append(f"dropped invalid score {value!r} of candidate {number}")
            continue
        given[number - 1] = score
    if not given:
        raise UnusableAnswer("no candidate got a usable score")
    missing = [i for i in range(k) if i not in given]
    if missing:
        repairs.append(f"no score for candidates {[i + 1 for i in missing]}: kept after the "
                       "scored ones, in retrieval order")
    # Higher score first; ties and unscored candidates keep retrieval order (stable).
    return sorted(given, key=lambda i: (-given[i], i)) + missing


def _order_from_ranking(ranking: list, k: int, repairs: list[str]) -> list[int]:
    order: list[int] = []
    for value in ranking:
        number = _as_int(value)
        if number is None or not 1 <= number <= k:
            repairs.append(f"dropped invented candidate {value!r}")
        elif number - 1 in order:
            repairs.append(f"dropped repeated candidate {number}")
        else:
            order.append(number - 1)
    if not order:
        raise UnusableAnswer("the ranking names no candidate")
    missing = [i for i in range(k) if i not in order]
    if missing:
        repairs.append(f"candidates {[i + 1 for i in missing]} missing: appended in retrieval "
                       "order")
    return order + missing


def parse_answer(text: str, k: int) -> ParsedAnswer:
    """Turn the model's text into a complete ordering of k candidates, or raise UnusableAnswer."""
    try:
        # strict=False: xgrammar's maxLength strings can let raw control characters through
        # (seen with vLLM 0.32); they are harmless inside strings and cleaned below.
        data = json.loads(text, strict=False)
    except (TypeError, ValueError):
        raise UnusableAnswer(f"the answer is not JSON: {str(text)[:80]!r}") from None
    if not isinstance(data, dict):
        raise UnusableAnswer("the answer is not a JSON object")
    repairs: list[str] = []
    if isinstance(data.get("scores"), dict) and data["scores"]:
        order = _order_from_scores(data["scores"], k, repairs)
    elif isinstance(data.get("ranking"), list) and data["ranking"]:
        order = _order_from_ranking(data["ranking"], k, repairs)
    else:
        raise UnusableAnswer("the answer has neither scores nor a ranking")
    reason = _clean(data.get("reason"))
    if not reason:
        repairs.append("no reason given")
    return ParsedAnswer(order=order, reason=reason[:REASON_MAX],
                        caption=_clean(data.get("caption"))[:CAPTION_MAX] or None, repairs=repairs)


def parse_caption(text: str) -> str:
    """The caption from a caption-only answer ({"caption": ...}), or raise UnusableAnswer."""
    try:
        data = json.loads(text, strict=False)
    except (TypeError, ValueError):
        raise UnusableAnswer(f"the caption answer is not JSON: {str(text)[:80]!r}") from None
    caption = _clean(data.get("caption") if isinstance(data, dict) else None)[:CAPTION_MAX]
    if not caption:
        raise UnusableAnswer("the caption answer has no caption")
    return caption


def _clean(value) -> str:
    """A model-written string as words only (shown to shoppers): no control characters, and
    no special tokens that a model may spell out (`<|end|>`, `<|reserved_26668|>`)."""
    return plain_text(value) if isinstance(value, str) else ""
