"""Prompt formats per vision-language model, in a small registry (no if/else chains)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

# Anything shaped like a chat-template or image token of the formats below (<|end|>,
# <|image_1|>, <|im_start|>, <image>, </s>): shopper text must not steer the template.
_SPECIAL = re.compile(r"<\|[^<>|]{0,40}\|>|</?s>|<image>|<\|?/?(?:vision|im)_[a-z]+\|?>",
                      re.IGNORECASE)


def plain_text(text: str) -> str:
    """Shopper text as words only: special tokens and control characters become spaces."""
    cleaned = _SPECIAL.sub(" ", text)
    cleaned = "".join(ch if ch.isprintable() else " " for ch in cleaned)
    return re.sub(r"\s+", " ", cleaned).strip()


@dataclass(frozen=True)
class RerankPrompt:
    """Everything the model reads besides the picture."""

    query_text: str
    caption: str | None  # a caption of the query image when known (cache), else None
    has_query_image: bool
    count: int
    ask_caption: bool  # the answer should start with a caption of the query image

    def instruction(self) -> str:
        lines = ["You rank products for a shopper."]
        if self.has_query_image:
            lines.append("The picture shows the shopper's query image on the left, framed in red "
                         f"and labelled QUERY, and {self.count} candidate products numbered 1 to "
                         f"{self.count}.")
        else:
            lines.append(f"The picture shows {self.count} candidate products numbered 1 to "
                         f"{self.count}.")
        if self.caption:
            lines.append(f"The query image shows: {plain_text(self.caption)}")
        words = plain_text(self.query_text)
        if words:
            lines.append(f'The shopper asks: "{words}"')
        if self.ask_caption:
            lines.append("First write a short caption of the query image.")
        lines.append(f"Score every candidate from 0 (irrelevant) to 10 (exactly what the shopper "
                     f"wants), under its number, all {self.count} of them, and say in one "
                     "sentence why the best one fits.")
        lines.append("Answer with JSON only.")
        return "\n".join(lines)


# A prompt format turns the instruction into the model's chat text; the picture is image 1.
PromptFormat = Callable[[str], str]


def phi3_vision(instruction: str) -> str:
    """Phi-3 / Phi-3.5 Vision chat format with one image placeholder."""
    return f"<|user|>\n<|image_1|>\n{instruction}<|end|>\n<|assistant|>\n"


def llava_style(instruction: str) -> str:
    return f"USER: <image>\n{instruction}\nASSISTANT:"


def qwen2_vl(instruction: str) -> str:
    return ("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
            f"{instruction}<|im_end|>\n<|im_start|>assistant\n")


# Model-name pattern -> format. First match wins; keys are regular expressions.
REGISTRY: dict[str, PromptFormat] = {
    r"phi-?3(\.5)?-vision|phi3v|phi3_v": phi3_vision,
    r"llava": llava_style,
    r"qwen2(\.5)?-vl": qwen2_vl,
}


def _architecture(model: str) -> str:
    """A local model folder's architecture name (its config.json), else ""."""
    try:
        config = json.loads((Path(model) / "config.json").read_text())
        return " ".join(config.get("architectures", []))
    except (OSError, ValueError):
        return ""


def prompt_format(model: str, override: str | None = None) -> PromptFormat:
    """The format for a model path or hub id (override: a format's name)."""
    names = {fmt.__name__: fmt for fmt in REGISTRY.values()}
    if override:
        if override in names:
            return names[override]
        raise ValueError(f"unknown prompt format {override!r}; known: {sorted(names)}")
    described = f"{model} {_architecture(model)}"
    for pattern, fmt in REGISTRY.items():
        if re.search(pattern, described, flags=re.IGNORECASE):
            return fmt
    raise ValueError(
        f"no prompt format for model {model!r}: set PARDUS_RERANKER__PROMPT_FORMAT to one of "
        f"{sorted(names)}"
    )
