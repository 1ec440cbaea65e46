"""Catalogue images for the API: read under the image root, store uploads, make thumbnails."""

from __future__ import annotations

import hashlib
import io
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from deployments.catalogue.references import read_image_bytes
from deployments.embedder.images import ImageLimits, decode_image
from deployments.uris import is_uri


class ImageLibrary:
    """Catalogue images under one root (a folder or an object storage URI): read with limits,
    write uploads by content, and make thumbnails (a small LRU cache: thumbnails repeat)."""

    def __init__(self, root: str, limits: ImageLimits, thumbnail_cache: int):
        self.root = root
        self.is_local = not is_uri(root)
        self.local_root = Path(root).expanduser().resolve() if self.is_local else None
        self.limits = limits
        self._thumbs: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._cache_size = thumbnail_cache

    def read(self, reference: str) -> bytes:
        """The bytes of an item's image reference; ImageError when missing or refused (a
        reference that leaves the root is refused, as in ingest)."""
        return read_image_bytes(reference, self.local_root if self.is_local else self.root,
                                self.limits.max_bytes)

    def write_upload(self, data: bytes, image_format: str) -> str:
        """Store uploaded bytes by content hash; returns the reference relative to the root."""
        name = f"uploads/{hashlib.sha256(data).hexdigest()[:32]}.{image_format.lower()}"
        if self.is_local:
            path = self.local_root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                tmp = path.with_suffix(".part")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic: a reader never sees half a file
        else:
            from pyarrow import fs

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
        key = (reference, size)
        if key in self._thumbs:
            self._thumbs.move_to_end(key)
            return self._thumbs[key]
        image = decode_image(self.read(reference), self.limits)
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=85)
        data = buf.getvalue()
        self._thumbs[key] = data
        if len(self._thumbs) > self._cache_size:
            self._thumbs.popitem(last=False)
        return data


def image_format(data: bytes, limits: ImageLimits) -> str:
    """The format of a valid image (fully decoded, within limits), else ImageError."""
    decode_image(data, limits)
    with Image.open(io.BytesIO(data)) as image:
        return (image.format or "png").lower()

