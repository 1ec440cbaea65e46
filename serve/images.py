"""Catalogue images for the API: read under the image root, store uploads, make thumbnails."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from pyarrow import fs

from pardus.deployments.catalogue.references import read_image_bytes
from pardus.deployments.embedder.images import ImageLimits, decode_image, open_image
from pardus.deployments.uris import is_uri

THUMBNAIL_SIZES = (64, 128, 256, 512, 1024)  # any asked size is served at the next step up


def snap_size(size: int) -> int:
    """The thumbnail size served for `size`: a few steps, so any size hits the cache."""
    return next((step for step in THUMBNAIL_SIZES if step >= size), THUMBNAIL_SIZES[-1])


class ImageLibrary:
    """Catalogue images under one root (a folder or an object storage URI): read with limits,
    write uploads by content, and make thumbnails."""

    def __init__(self, root: str, limits: ImageLimits, allow_buckets: Sequence[str] = ()):
        self.root, self.allow_buckets = root, tuple(allow_buckets)
        self.is_local = not is_uri(root)
        self.local_root = Path(root).expanduser().resolve() if self.is_local else None
        self.limits = limits

    def read(self, reference: str) -> bytes:
        """The bytes of an item's image reference; ImageError when missing or refused (a
        reference that leaves the root is refused, as in ingest)."""
        return read_image_bytes(reference, self.local_root if self.is_local else self.root,
                                self.limits.max_bytes, allow_buckets=self.allow_buckets)

    def write_upload(self, data: bytes, image_format: str) -> str:
        """Store uploaded bytes by content hash; returns the reference relative to the root."""
        name = f"uploads/{hashlib.sha256(data).hexdigest()[:32]}.{image_format.lower()}"
        if self.is_local:
            path = self.local_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                # a name of its own: two items of one request may carry the same picture
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
                tmp.write_bytes(data)
                os.replace(tmp, path)  # atomic: a reader never sees half a file
        else:

            filesystem, base = fs.FileSystem.from_uri(self.root)
            path = f"{base.rstrip('/')}/{name}"
            if filesystem.get_file_info(path).type == fs.FileType.NotFound:
                # a no-op on object stores; local and HDFS paths need the folder
                filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
                with filesystem.open_output_stream(path) as out:
                    out.write(data)
        return name

    def thumbnail(self, reference: str, size: int) -> bytes:
        """A JPEG at most size x size pixels of the image behind reference."""
        image = decode_image(self.read(reference), self.limits)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        return buf.getvalue()


def image_format(data: bytes, limits: ImageLimits) -> str:
    """The format of an image, from its header (a supported format within the limits), else
    ImageError; the embedder decodes it whole, once."""
    with open_image(data, limits) as image:
        return (image.format or "png").lower()

