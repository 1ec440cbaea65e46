"""Inputs of the parity check, generated identically by the fixture script and the test."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Sizes that exercise upscaling, downscaling, odd centre-crop offsets and both orientations.
IMAGE_SIZES = [(64, 64), (90, 70), (41, 97), (301, 222), (33, 33), (500, 180)]
IMAGE_TEXTS = ["", "a phone case with this", "ein roter Becher", "leopard print mug for the kitchen",
               "带 这个 图案 的 手机壳", "a"]
TEXTS = ["a red phone case", "leopard", "une coque de téléphone avec ce motif",
         "a large wooden table with metal legs", "x", "красная сумка gift for kids 123"]


def parity_images() -> list[Image.Image]:
    """Smooth random pictures (noise plus gradients), so resampling differences would show."""
    rng = np.random.default_rng(1234)
    images = []
    for width, height in IMAGE_SIZES:
        yy, xx = np.mgrid[0:height, 0:width]
        base = np.stack([xx / width, yy / height, (xx + yy) / (width + height)], axis=-1) * 200
        noise = rng.normal(0, 25, (height, width, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        images.append(Image.fromarray(pixels, "RGB"))
    return images
