"""Queries in, Embeddings out: the one query encoding that Serve and in-process search share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deployments.embedder.images import ImageError


@dataclass
class EmbedQuery:
    text: str = ""
    image: bytes | None = None  # encoded image bytes; None = a text-only query


@dataclass
class Embedding:
    vector: np.ndarray | None  # float32 unit row; None when the image failed
    truncated: bool = False  # the text was cut to the model's token budget
    error: ImageError | None = None


def encode_queries(embedder, queries: list[EmbedQuery]) -> list[Embedding]:
    """Queries to Embeddings with one Embedder: texts in one pass, image+text pairs in
    another; a bad image fails its own query only. The Serve deployment and in-process
    searches both call this."""
    out: list[Embedding] = [Embedding(None)] * len(queries)
    texts = [i for i, q in enumerate(queries) if q.image is None]
    pairs = [i for i, q in enumerate(queries) if q.image is not None]
    if texts:
        result = embedder.encode_texts([queries[i].text for i in texts])
        for i, row, cut in zip(texts, result.vectors, result.truncated):
            out[i] = Embedding(row, cut)
    if pairs:
        result = embedder.encode_pairs([queries[i].image for i in pairs],
                                       [queries[i].text for i in pairs])
        for i, row, error, cut in zip(pairs, result.vectors, result.errors, result.truncated):
            out[i] = Embedding(None, False, error) if error is not None else Embedding(row, cut)
    return out
