"""Queries in, Embeddings out: the one query encoding that Serve and in-process search share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pardus.deployments.embedder.images import ImageError


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


@dataclass
class PictureQuery:
    """A catalogue picture to index: its bytes and its item's title."""

    image: bytes
    title: str = ""


@dataclass
class PictureVectors:
    image: np.ndarray | None  # the image alone (what image and composed queries search)
    pair: np.ndarray | None  # the image with the title (what text queries search)
    error: ImageError | None = None


def encode_pictures(embedder, queries: list[PictureQuery]) -> list[PictureVectors]:
    """Pictures to their two vectors with one Embedder (one vision pass each); a bad image
    fails its own entry only."""
    decoded = embedder.decode([q.image for q in queries])
    good = [i for i, d in enumerate(decoded) if not isinstance(d, ImageError)]
    out = [PictureVectors(None, None, d) if isinstance(d, ImageError) else None for d in decoded]
    if good:
        images, pairs = embedder.encode_pictures([decoded[i] for i in good],
                                                 [queries[i].title for i in good])
        for row, i in enumerate(good):
            out[i] = PictureVectors(images[row], pairs[row])
    return out
