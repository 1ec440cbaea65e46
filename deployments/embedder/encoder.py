"""The embedder: lists of texts, images or image+text pairs in, float32 unit rows out.

Split like an inference server's model wrapper: `prepare` (decode, validate, tokenise: CPU,
per item, may fail per item), `run` (one forward pass per batch on the device) and the caller
assembles rows. Ray Data stages and Serve deployments both wrap this class.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from transformers import AutoTokenizer

from pardus.deployments.embedder.checkpoint import load_model, resolve
from pardus.deployments.embedder.images import (
    ImageError,
    ImageInput,
    ImageLimits,
    normalize_pixels,
    preprocess,
)
from pardus.deployments.settings import EmbedderSettings

log = logging.getLogger(__name__)


@dataclass
class EmbedResult:
    """Rows in input order; a failed item has a zero row and its error at the same index."""

    vectors: np.ndarray
    errors: list[ImageError | None]
    truncated: list[bool] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        return np.array([e is None for e in self.errors], dtype=bool)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


class Embedder:
    """Visualized BGE inference in batches, with per-item image errors."""

    def __init__(self, settings: EmbedderSettings):
        self.settings = settings
        self.device = pick_device(settings.device)
        self.dtype = pick_dtype(settings.dtype, self.device)
        if self.device.type == "cpu":  # Ray caps a worker's threads at its fractional CPUs
            torch.set_num_threads(settings.threads or os.cpu_count() or 1)
        files = resolve(settings)
        self.model = load_model(files, self.device, self.dtype)
        if settings.dim is not None and settings.dim != self.dim:
            raise ValueError(f"embedder.dim is {settings.dim} but {files.checkpoint.name} makes "
                             f"{self.dim}-d vectors: fix PARDUS_EMBEDDER__DIM or unset it")
        self.tokenizer = AutoTokenizer.from_pretrained(files.text_model)
        self.image_size = self.model.vision.config.image_size
        self.limits = ImageLimits.of(settings)
        self._pool = ThreadPoolExecutor(settings.decode_workers, thread_name_prefix="decode")
        # Position budget: text alone gets the tokenizer's maximum; beside an image, what is
        # left after the image tokens (the reference never truncates and overflows instead).
        self.max_text_tokens = min(self.tokenizer.model_max_length, self.model.max_positions)
        self.max_pair_text_tokens = self.model.max_positions - self.model.image_tokens

    @property
    def dim(self) -> int:
        return self.model.text.config.hidden_size

    # -- prepare: CPU work per item -------------------------------------------------------
    def _decode_one(self, item: ImageInput) -> np.ndarray | ImageError:
        try:
            return preprocess(item, self.image_size, self.limits)
        except ImageError as exc:
            return exc

    def decode(self, images: Sequence[ImageInput]) -> list[np.ndarray | ImageError]:
        """Decode and crop images in parallel threads (Pillow releases the GIL)."""
        return list(self._pool.map(self._decode_one, images))

    def tokenize(self, texts: Sequence[str], max_tokens: int) -> tuple[dict, list[bool]]:
        """Tokenise once; cut over-long texts to max_tokens, keeping the closing [SEP]."""
        ids = self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        truncated = [len(row) > max_tokens for row in ids]
        if any(truncated):
            log.warning(
                "%d of %d texts truncated to %d tokens (the model's position budget)",
                sum(truncated), len(ids), max_tokens,
            )
            ids = [row[: max_tokens - 1] + row[-1:] if cut else row
                   for row, cut in zip(ids, truncated)]
        batch = self.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
        return batch, truncated

    # -- run: one forward pass per batch ----------------------------------------------------
    @torch.inference_mode()
    def _run_text(self, texts: Sequence[str]) -> tuple[torch.Tensor, list[bool]]:
        batch, truncated = self.tokenize(texts, self.max_text_tokens)
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        return self.model.encode_text(ids, mask), truncated

    @torch.inference_mode()
    def _run_pairs(
        self, pixels: list[np.ndarray], texts: Sequence[str]
    ) -> tuple[torch.Tensor, list[bool]]:
        batch, truncated = self.tokenize(texts, self.max_pair_text_tokens)
        raw = torch.from_numpy(np.stack(pixels)).to(self.device, non_blocking=True)
        x = normalize_pixels(raw, self.dtype)
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        return self.model.encode_multimodal(x, ids, mask), truncated

    @torch.inference_mode()
    def _run_pictures(
        self, pixels: list[np.ndarray], titles: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raw = torch.from_numpy(np.stack(pixels)).to(self.device, non_blocking=True)
        image = self.model.image_embeddings(normalize_pixels(raw, self.dtype))  # once for both
        vectors = []
        for texts in ([""] * len(titles), titles):
            batch, _ = self.tokenize(texts, self.max_pair_text_tokens)
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            vectors.append(self.model.encode_with_image(image, ids, mask))
        return vectors[0], vectors[1]

    # -- public API -------------------------------------------------------------------------
    def encode_pictures(
        self, decoded: Sequence[np.ndarray], titles: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Catalogue pictures (decoded crops) and their items' titles -> (image vectors,
        image + title vectors); the vision tower runs once per picture for both."""
        if len(decoded) != len(titles):
            raise ValueError(f"{len(decoded)} pictures but {len(titles)} titles")
        images = np.zeros((len(decoded), self.dim), dtype=np.float32)
        pairs = np.zeros_like(images)
        for start in range(0, len(decoded), self.settings.batch_size):
            stop = start + self.settings.batch_size
            image, pair = self._run_pictures(list(decoded[start:stop]), titles[start:stop])
            images[start:stop], pairs[start:stop] = image.cpu().numpy(), pair.cpu().numpy()
        return images, pairs

    def encode_texts(self, texts: Sequence[str]) -> EmbedResult:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        truncated: list[bool] = []
        for start in range(0, len(texts), self.settings.batch_size):
            chunk = texts[start : start + self.settings.batch_size]
            vectors, cut = self._run_text(chunk)
            out[start : start + len(chunk)] = vectors.cpu().numpy()
            truncated += cut
        return EmbedResult(out, [None] * len(texts), truncated)

    def encode_images(self, images: Sequence[ImageInput]) -> EmbedResult:
        return self.encode_pairs(images, [""] * len(images))

    def encode_pairs(self, images: Sequence[ImageInput], texts: Sequence[str]) -> EmbedResult:
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images but {len(texts)} texts: give one text each")
        decoded = self.decode(images)
        return self.encode_decoded(decoded, texts)

    def encode_decoded(
        self, decoded: Sequence[np.ndarray | ImageError], texts: Sequence[str]
    ) -> EmbedResult:
        """Encode already-decoded crops (uint8, 3xSxS); ImageError entries are passed through."""
        n = len(decoded)
        out = np.zeros((n, self.dim), dtype=np.float32)
        errors: list[ImageError | None] = [d if isinstance(d, ImageError) else None
                                           for d in decoded]
        truncated = [False] * n
        good = [i for i in range(n) if errors[i] is None]
        for start in range(0, len(good), self.settings.batch_size):
            idx = good[start : start + self.settings.batch_size]
            vectors, cut = self._run_pairs([decoded[i] for i in idx], [texts[i] for i in idx])
            out[idx] = vectors.cpu().numpy()
            for i, c in zip(idx, cut):
                truncated[i] = c
        return EmbedResult(out, errors, truncated)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
