"""Numerical parity with FlagEmbedding's reference Visualized_BGE on the same checkpoint.

The fixtures hold the reference's own outputs (made by fixtures/make_parity_fixture.py in the
reference's environment) for a seeded random checkpoint written by `pardus models tiny`; the
test rewrites that checkpoint, checks it is byte-for-byte the same content, and compares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pardus.deployments.embedder.encoder import Embedder
from pardus.deployments.settings import EmbedderSettings
from pardus.deployments.tiny.embedder import state_digest, write_tiny_model
from tests.deployments.embedder.parity_inputs import IMAGE_TEXTS, TEXTS, parity_images

FIXTURES = Path(__file__).parent / "fixtures"


def row_cosines(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (ours * ref).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(ref, axis=1)


def tiny_embedder(folder: Path, **model_args) -> Embedder:
    env = write_tiny_model(folder, **model_args)
    return Embedder(EmbedderSettings(
        checkpoint=env["PARDUS_EMBEDDER__CHECKPOINT"], text_model=env["PARDUS_EMBEDDER__TEXT_MODEL"],
        batch_size=4, dtype="float32", device="cpu",
    ))


def check_parity(fixture: Path, tmp_path: Path, **model_args) -> None:
    ref = np.load(fixture)
    embedder = tiny_embedder(tmp_path / "model", seed=0, **model_args)
    digest = state_digest(torch.load(embedder.settings.checkpoint))
    assert digest == str(ref["digest"]), (
        "the random checkpoint changed: regenerate the fixture with "
        "tests/deployments/embedder/fixtures/make_parity_fixture.py"
    )
    images = parity_images()
    ours = {  # batched (4 per pass, mixed sizes and text lengths), unlike the reference
        "image": embedder.encode_images(images).vectors,
        "text": embedder.encode_texts(TEXTS).vectors,
        "mm": embedder.encode_pairs(images, IMAGE_TEXTS).vectors,
    }
    for kind, rows in ours.items():
        cos = row_cosines(rows, ref[kind])
        assert cos.min() >= 0.9999, f"{kind}: cosine per row {np.round(cos, 6)}"
        assert np.abs(rows - ref[kind]).max() < 1e-3, kind


def test_parity_with_reference_tiny(tmp_path):
    check_parity(FIXTURES / "parity_tiny_seed0.npz", tmp_path)


def test_parity_with_reference_full_size(tmp_path):
    """The real architecture's sizes: bge-base (12 layers) + EVA02-CLIP-B-16 at 224 px."""
    check_parity(FIXTURES / "parity_full_seed0.npz", tmp_path, full_size=True)


def test_parity_with_reference_m3(tmp_path):
    """The multilingual variant: XLM-R text encoder + an EVA02-CLIP-L-14-shaped tower."""
    check_parity(FIXTURES / "parity_m3_seed0.npz", tmp_path, variant="m3")


def test_parity_check_would_catch_a_wrong_model(tmp_path):
    """Guard: the same comparison fails for another seed's weights (the test can fail)."""
    ref = np.load(FIXTURES / "parity_tiny_seed0.npz")
    embedder = tiny_embedder(tmp_path / "other", seed=1)
    rows = embedder.encode_pairs(parity_images(), IMAGE_TEXTS).vectors
    assert row_cosines(rows, ref["mm"]).min() < 0.9999
