"""Decoding and preprocessing: hostile and unusual images, and torchvision-exact cropping."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from pardus.deployments.embedder.images import (
    ImageError,
    ImageLimits,
    decode_image,
    preprocess,
    resize_center_crop,
)
from pardus.deployments.settings import EmbedderSettings

LIMITS = ImageLimits.of(EmbedderSettings())


def encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A small PNG file whose header declares width x height (a decompression bomb's shape)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def photo(width: int = 60, height: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (b"this is plain text, not a picture", "not_an_image"),
        (png_header_only(100_000, 100_000), "too_large"),
    ],
)
def test_bad_bytes_get_a_coded_error(data, code):
    with pytest.raises(ImageError) as info:
        decode_image(data, LIMITS)
    assert info.value.reason == code
    assert info.value.message


def test_truncated_jpeg_is_reported_as_truncated():
    data = encode(photo(200, 200), "JPEG", quality=95)
    with pytest.raises(ImageError) as info:
        decode_image(data[: len(data) // 2], LIMITS)
    assert info.value.reason == "truncated"


def test_garbage_after_a_valid_header_is_refused():
    data = encode(photo(64, 64))
    damaged = data[:60] + bytes(reversed(data[60:200])) + data[200:]
    with pytest.raises(ImageError) as info:
        decode_image(damaged, LIMITS)
    assert info.value.reason in {"corrupt", "truncated"}


def test_pixel_limit_is_configurable():
    data = encode(photo(200, 200))
    assert decode_image(data, ImageLimits(40_000, LIMITS.max_bytes)).size == (200, 200)
    with pytest.raises(ImageError, match="over the limit of 39999") as info:
        decode_image(data, ImageLimits(39_999, LIMITS.max_bytes))
    assert info.value.reason == "too_large"


def test_byte_limit_applies_to_bytes_and_files(tmp_path):
    data = encode(photo(64, 64))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for item in (data, path, str(path)):
        with pytest.raises(ImageError) as info:
            decode_image(item, ImageLimits(LIMITS.max_pixels, len(data) - 1))
        assert info.value.reason == "too_large"


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(ImageError) as info:
        decode_image(tmp_path / "nope.jpg", LIMITS)
    assert info.value.reason == "not_found"
    with pytest.raises(ImageError) as info:
        decode_image(12345, LIMITS)  # type: ignore[arg-type]
    assert info.value.reason == "wrong_type"


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise: the left half goes on top
    out = decode_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95), LIMITS)
    assert out.size == (20, 40)
    top, bottom = np.asarray(out)[5, 10], np.asarray(out)[35, 10]
    assert top[0] > 200 and top[2] < 60
    assert bottom[2] > 200 and bottom[0] < 60


def test_alpha_is_composited_on_white():
    image = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red
    image.putpixel((0, 0), (255, 0, 0, 255))
    out = np.asarray(decode_image(encode(image), LIMITS))
    assert tuple(out[5, 5]) == (255, 255, 255)
    assert tuple(out[0, 0]) == (255, 0, 0)


def test_palette_with_transparency_is_composited_on_white():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    out = np.asarray(decode_image(encode(image, transparency=0), LIMITS))
    assert tuple(out[4, 4]) == (255, 255, 255)
    assert tuple(out[1, 1]) == (0, 255, 0)


def test_sixteen_bit_grey_is_rescaled_not_clipped():
    values = np.array([[0, 32768, 65535, 1000]], dtype=np.uint16)
    image = Image.fromarray(values)  # mode I;16
    out = np.asarray(decode_image(encode(image), LIMITS))
    assert list(out[0, :, 0]) == [0, 128, 255, 4]


def test_cmyk_and_greyscale_become_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # red ink
    out = decode_image(encode(cmyk, "JPEG", quality=95), LIMITS)
    assert out.mode == "RGB" and out.getpixel((8, 8))[0] > 200
    grey = decode_image(encode(Image.new("L", (4, 4), 77)), LIMITS)
    assert grey.mode == "RGB" and grey.getpixel((1, 1)) == (77, 77, 77)


def test_animated_gif_uses_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    assert decode_image(buf.getvalue(), LIMITS).getpixel((4, 4))[0] > 200


@pytest.mark.parametrize(("width", "height"), [(60, 40), (40, 61), (224, 224), (301, 97)])
def test_resize_crop_matches_torchvision_rules(width, height):
    out = resize_center_crop(photo(width, height), 32)
    assert out.size == (32, 32)
    # torchvision: the long side becomes int(32 * long / short); crop offset round((L - 32) / 2)
    short, long = min(width, height), max(width, height)
    new_long = int(32 * long / short)
    resized = photo(width, height).resize(
        (32, new_long) if width <= height else (new_long, 32), Image.Resampling.BICUBIC
    )
    offset = int(round((new_long - 32) / 2.0))
    box = (0, offset, 32, offset + 32) if width <= height else (offset, 0, offset + 32, 32)
    assert np.array_equal(np.asarray(out), np.asarray(resized.crop(box)))


def test_preprocess_returns_uint8_channels_first():
    out = preprocess(encode(photo()), 64, LIMITS)
    assert out.shape == (3, 64, 64) and out.dtype == np.uint8
