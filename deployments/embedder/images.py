"""Image decoding and CLIP preprocessing, with a clear error per bad image."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pardus.deployments.errors import BadQuery, TooLarge
from pardus.deployments.settings import EmbedderSettings

ImageInput = Union[bytes, bytearray, memoryview, str, PathLike, Image.Image]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# Transparent pixels are shown on white, as a shop page would show a cut-out product photo.
_BACKGROUND = (255, 255, 255)


class ImageError(BadQuery):
    """One image could not be used. `reason` names why (not_an_image, truncated, ...: what
    ingest reports), `code` is the same as the API shows it (image_not_an_image); the message
    says what to fix."""

    def __init__(self, reason: str, message: str, field: str | None = "image"):
        super().__init__(message, f"image_{reason}", field)
        self.reason = reason


class ImageTooLarge(ImageError, TooLarge):
    """Over a byte or pixel limit."""

    def __init__(self, message: str, field: str | None = "image"):
        super().__init__("too_large", message, field)


# What Pillow may open: the formats catalogues and shoppers use. Not every format Pillow knows
# (EPS would run Ghostscript where it is installed, and each parser is attack surface).
FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers MPO (camera JPEGs)


@dataclass(frozen=True)
class ImageLimits:
    """What an image may weigh; built from settings (`ImageLimits.of`), never assumed."""

    max_pixels: int
    max_bytes: int
    # Pixels after scaling the short side to the model's input: a 5 x 1,000,000 picture is 2 KB
    # but would become 224 x 44,800,000 (30 GB) before the centre crop.
    max_resized_pixels: int = 20_000_000

    @classmethod
    def of(cls, settings: EmbedderSettings) -> "ImageLimits":
        return cls(settings.max_image_pixels, settings.max_image_bytes,
                   settings.max_resized_pixels)


def read_file(path: Path, max_bytes: int) -> bytes:
    """A file's bytes, or an ImageError when it is missing, unreadable or over max_bytes."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLarge(f"image file {path} is {size} bytes, over the limit of {max_bytes}")
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageError("not_found", f"image file not found: {path}") from None
    except OSError as exc:
        raise ImageError("unreadable", f"cannot read image file {path}: {exc}") from None


def _read_bytes(item: ImageInput, limits: ImageLimits) -> bytes:
    if isinstance(item, (bytes, bytearray, memoryview)):
        data = bytes(item)
    elif isinstance(item, (str, PathLike)):
        data = read_file(Path(item), limits.max_bytes)
    else:
        raise ImageError(
            "wrong_type",
            f"expected image bytes, a file path or a PIL image, got {type(item).__name__}",
        )
    if not data:
        raise ImageError("empty", "the image is empty (zero bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"image is {len(data)} bytes, over the limit of {limits.max_bytes}")
    return data


def _check_pixels(image: Image.Image, limits: ImageLimits) -> None:
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("corrupt", f"image has no pixels ({width}x{height})")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(
            f"image is {width}x{height} = {width * height} pixels, over the limit of "
            f"{limits.max_pixels}: downscale it first",
        )


def _check_resize(image: Image.Image, size: int, limits: ImageLimits) -> None:
    """Refuse, from the header, an image too elongated to scale to `size` on its short side."""
    width, height = image.size
    short, long = sorted((width, height))
    resized = size * max(size, int(size * long / short))
    if resized > limits.max_resized_pixels:
        raise ImageError(
            "too_elongated",
            f"image is {width}x{height}: scaled to {size} px on its short side it would be "
            f"{resized} pixels, over the limit of {limits.max_resized_pixels}; crop it to a "
            "less elongated shape first")


_ROWS = 512  # rows converted at a time: temporaries stay small for 40-Mpx pictures


def _rescaled_grey(image: Image.Image) -> Image.Image:
    """16/32-bit and float grey to 8 bits by scaling (Pillow's convert() clips to 0..255: a
    white image), a band of rows at a time in float32 (no float64 copy of the whole image)."""
    values = np.asarray(image)
    top = float(values.max(initial=0))
    if image.mode.startswith("I;16") or top > 255:
        top = 65535.0 if image.mode.startswith("I;16") or top <= 65535 else top
    elif image.mode == "F" and top <= 1.0:
        top = 1.0
    else:
        top = 255.0
    grey = np.empty(values.shape, dtype=np.uint8)
    for start in range(0, values.shape[0], _ROWS):
        band = values[start : start + _ROWS].astype(np.float32)
        grey[start : start + _ROWS] = np.clip(band * (255.0 / top) + 0.5, 0, 255)
    return Image.fromarray(grey, "L")


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB without the usual surprises."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return _rescaled_grey(image).convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, P, 1, CMYK, YCbCr, LAB, HSV


def _damaged(exc: Exception, part: str) -> ImageError:
    text = str(exc)
    code = "truncated" if "runcated" in text or "broken data" in text else "corrupt"
    return ImageError(code, f"image {part} is {code} ({text}): re-export or re-upload the file")


def open_image(item: ImageInput, limits: ImageLimits) -> Image.Image:
    """Open an image's header (nothing decoded yet) and check its size: an ImageError when it
    is not a picture in a supported format, or too large."""
    if isinstance(item, Image.Image):
        _check_pixels(item, limits)
        return item
    data = _read_bytes(item, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=FORMATS)
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "not an image in a supported format "
                         f"({', '.join(FORMATS)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLarge("image declares too many pixels (decompression bomb)") from None
    except Exception as exc:  # Pillow raises many types for hostile headers
        raise _damaged(exc, "header") from None
    _check_pixels(image, limits)
    return image


def decode_image(item: ImageInput, limits: ImageLimits, size: int | None = None) -> Image.Image:
    """Open, validate and fully decode one image into an upright 8-bit RGB PIL image (that can
    be scaled to `size` px on its short side, when given)."""
    image = open_image(item, limits)
    if size is not None:
        _check_resize(image, size, limits)
    if not isinstance(item, Image.Image):
        try:
            image.load()  # the first frame of an animated picture
        except Exception as exc:
            raise _damaged(exc, "data") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the image
        pass
    return _to_rgb(image)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resize the short side to `size` (bicubic), then crop the centre square.

    Rounding follows torchvision's Resize/CenterCrop exactly, so pixels match the reference.
    """
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    if short != size:
        new_short, new_long = size, int(size * long / short)
        new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
        width, height = new_w, new_h
    left = int(round((width - size) / 2.0))
    top = int(round((height - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_pixels(image: Image.Image, size: int) -> np.ndarray:
    """An RGB PIL image -> its (3, size, size) uint8 centre crop (normalised later, on device)."""
    arr = np.asarray(resize_center_crop(image, size), dtype=np.uint8)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def preprocess(item: ImageInput, size: int, limits: ImageLimits) -> np.ndarray:
    """Decode one image and return its (3, size, size) uint8 crop, or raise ImageError."""
    return to_pixels(decode_image(item, limits, size), size)


def normalize_pixels(batch, dtype=None):
    """(B, 3, H, W) uint8 tensor -> CLIP-normalised float tensor, as ToTensor + Normalize do."""
    # Only the model's side needs torch: the ingress and ingest's readers decode without it.
    import torch

    x = batch.to(torch.float32).div(255.0)
    mean = torch.tensor(CLIP_MEAN, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    x = x.sub(mean).div(std)
    return x if dtype is None else x.to(dtype)
