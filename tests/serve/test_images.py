"""ImageLibrary: uploads by content, reads and thumbnails under a folder or a folder URI."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from pardus.deployments.embedder.images import ImageError, ImageLimits
from pardus.deployments.settings import EmbedderSettings
from pardus.serve.images import ImageLibrary, image_format

LIMITS = ImageLimits.of(EmbedderSettings())


def png(size=(300, 200), color="red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("as_uri", [False, True], ids=["folder", "file-uri"])
def test_upload_read_thumbnail_and_escape(tmp_path, as_uri):
    root = tmp_path.as_uri() if as_uri else str(tmp_path)
    library = ImageLibrary(root, LIMITS)
    data = png()
    reference = library.write_upload(data, image_format(data, LIMITS))
    assert reference.startswith("uploads/") and reference.endswith(".png")
    assert library.write_upload(data, "png") == reference  # by content: stored once
    assert library.read(reference) == data
    thumb = Image.open(io.BytesIO(library.thumbnail(reference, 64)))
    assert thumb.format == "JPEG" and max(thumb.size) == 64
    (tmp_path.parent / "secret.png").write_bytes(data)
    with pytest.raises(ImageError) as caught:
        library.read("../secret.png")
    assert caught.value.reason == "path_escape"
    with pytest.raises(ImageError):
        library.read("uploads/missing.png")


def test_image_format_refuses_what_is_not_an_image():
    with pytest.raises(ImageError):
        image_format(b"not an image", LIMITS)
