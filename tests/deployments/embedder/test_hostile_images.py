"""Pictures built to hurt: thin strips, 16-bit giants, formats we do not open. Decoded in a
child process under a memory cap, so a regression fails a test instead of the machine."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.deployments.embedder.test_images import png_header_only

MEMORY_CAP = 3 * 1024**3  # bytes of address space for the child
CHILD = Path(__file__).with_name("hostile_child.py")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def grey_png(width: int, height: int) -> bytes:
    """A valid 8-bit grey PNG of any shape, a few KB (rows of zeros compress to nothing)."""
    raw = zlib.compress(b"".join(b"\x00" + bytes(width) for _ in range(height)), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", raw)
            + png_chunk(b"IEND", b""))


def sixteen_bit(side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("I;16", (side, side), 40000).save(buf, "PNG")
    return buf.getvalue()


def eps() -> bytes:
    return b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


def decode_in_child(tmp_path: Path, data: bytes) -> dict:
    picture = tmp_path / "picture.bin"
    picture.write_bytes(data)
    done = subprocess.run([sys.executable, str(CHILD), str(picture), str(MEMORY_CAP)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"the decoder died ({done.returncode}): {done.stderr[-2000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("width", "height"), [(5, 1_000_000), (1, 40_000_000),
                                               (2, 20_000_000), (1_000_000, 5)])
def test_thin_strips_are_refused_before_any_resize(tmp_path, width, height):
    # a few KB whole, or (the largest) a header declaring the size: all a refusal needs
    data = grey_png(width, height) if width * height < 10**7 else png_header_only(width, height)
    answer = decode_in_child(tmp_path, data)
    assert answer["code"] == "too_elongated" and "crop it" in answer["message"], answer


def test_a_long_but_reasonable_strip_still_indexes(tmp_path):
    assert decode_in_child(tmp_path, grey_png(4000, 12)) == {"code": "ok", "shape": [3, 224, 224]}


def test_a_large_sixteen_bit_picture_decodes_within_the_cap(tmp_path):
    assert decode_in_child(tmp_path, sixteen_bit(6000))["code"] == "ok"


def test_formats_we_do_not_open_are_not_images(tmp_path):
    assert decode_in_child(tmp_path, eps())["code"] == "not_an_image"
