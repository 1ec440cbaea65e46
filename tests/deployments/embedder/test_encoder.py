"""The embedder on a tiny real model: batching, per-item errors, truncation, normalisation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pardus.deployments.embedder.images import ImageError


def jpeg(seed: int, size=(90, 70)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_rows_are_unit_norm_and_768d(embedder):
    texts = embedder.encode_texts(["a red phone case", "leopard print"]).vectors
    images = embedder.encode_images([jpeg(1), jpeg(2)]).vectors
    pairs = embedder.encode_pairs([jpeg(1)], ["a phone case with this"]).vectors
    for rows in (texts, images, pairs):
        assert rows.dtype == np.float32 and rows.shape[1] == 768
        np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)


def test_modalities_differ(embedder):
    image = embedder.encode_images([jpeg(1)]).vectors[0]
    pair = embedder.encode_pairs([jpeg(1)], ["a phone case with this"]).vectors[0]
    text = embedder.encode_texts(["a phone case with this"]).vectors[0]
    assert abs(float(image @ pair)) < 0.9999 and abs(float(text @ pair)) < 0.9999


def test_batched_equals_one_at_a_time(embedder):
    images = [jpeg(i, size=(60 + 7 * i, 50 + 3 * i)) for i in range(6)]
    texts = ["", "a", "a phone case with this", "red leopard print mug for the kitchen", "x", "cat"]
    batched = embedder.encode_pairs(images, texts).vectors
    single = np.concatenate([embedder.encode_pairs([i], [t]).vectors for i, t in zip(images, texts)])
    assert cosines(batched, single).min() >= 0.9999
    text_batched = embedder.encode_texts(texts).vectors
    text_single = np.concatenate([embedder.encode_texts([t]).vectors for t in texts])
    assert cosines(text_batched, text_single).min() >= 0.9999


def test_bad_images_fail_alone(embedder):
    good = [jpeg(3), jpeg(4)]
    items = [good[0], b"", b"not an image", good[1], jpeg(5)[:200]]
    result = embedder.encode_images(items)
    assert [e.reason if e else None for e in result.errors] == [
        None, "empty", "not_an_image", None, "truncated",
    ]
    assert list(result.ok) == [True, False, False, True, False]
    assert not result.vectors[~result.ok].any()
    alone = embedder.encode_images(good).vectors
    assert cosines(result.vectors[result.ok], alone).min() >= 0.9999
    assert all(isinstance(e, ImageError) for e in np.array(result.errors, dtype=object)[~result.ok])


def test_image_inputs_as_bytes_path_and_pil(embedder, tmp_path):
    data = jpeg(9)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    pil = Image.open(io.BytesIO(data))
    rows = embedder.encode_images([data, path, str(path), pil]).vectors
    assert cosines(rows, np.repeat(rows[:1], 4, axis=0)).min() >= 0.99999


def test_image_text_never_overflows_positions(embedder):
    long_text = " ".join(["leopard"] * 600)
    result = embedder.encode_pairs([jpeg(1), jpeg(1)], [long_text, "short"])
    assert result.truncated == [True, False]
    assert np.isfinite(result.vectors).all()
    budget = embedder.model.max_positions - embedder.model.image_tokens
    assert embedder.max_pair_text_tokens == budget
    text_result = embedder.encode_texts([long_text, "short"])
    assert text_result.truncated == [True, False]


def test_truncation_keeps_the_closing_separator(embedder):
    batch, truncated = embedder.tokenize(["cat " * 50, "cat"], 8)
    ids = batch["input_ids"]
    assert truncated == [True, False] and ids.shape == (2, 8)
    assert ids[0, -1].item() == embedder.tokenizer.sep_token_id


def test_mismatched_lengths_are_refused(embedder):
    with pytest.raises(ValueError, match="give one text each"):
        embedder.encode_pairs([jpeg(1)], ["a", "b"])


def test_bfloat16_runs_close_to_float32(embedder_settings):
    from pardus.deployments.embedder.encoder import Embedder

    fp32 = Embedder(embedder_settings)
    bf16 = Embedder(embedder_settings.model_copy(update={"dtype": "bfloat16"}))
    assert bf16.model.visual_proj.weight.dtype == torch.bfloat16
    images, texts = [jpeg(1), jpeg(2)], ["a phone case with this", ""]
    a = fp32.encode_pairs(images, texts).vectors
    b = bf16.encode_pairs(images, texts).vectors
    assert b.dtype == np.float32 and cosines(a, b).min() > 0.99
