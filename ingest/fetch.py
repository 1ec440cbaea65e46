"""Resolve an image reference and read its bytes, within the source root and a size limit."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from deployments.embedder.images import ImageError, read_file

REMOTE_SCHEMES = {"s3", "gs", "gcs", "abfs", "abfss", "hdfs", "file"}


def _read_local(path: Path, root: Path, max_bytes: int) -> bytes:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise ImageError("path_escape", f"image path {path} leaves the source folder {root}")
    return read_file(resolved, max_bytes)


def _read_pyarrow(uri: str, max_bytes: int) -> bytes:
    from pyarrow import fs

    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
        with filesystem.open_input_file(path) as handle:
            if handle.size() > max_bytes:
                raise ImageError("too_large", f"{uri} is {handle.size()} bytes, over {max_bytes}")
            return handle.read()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("not_found", f"image not found: {uri}") from None
    except Exception as exc:  # pyarrow raises OSError/ArrowException subclasses per backend
        raise ImageError("unreadable", f"cannot read {uri}: {exc}") from None


def _read_http(url: str, max_bytes: int, timeout: float) -> bytes:
    import httpx

    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise ImageError("http_error", f"{url} answered HTTP {response.status_code}")
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > max_bytes:
                    raise ImageError("too_large", f"{url} is over the limit of {max_bytes} bytes")
            return bytes(data)
    except ImageError:
        raise
    except httpx.HTTPError as exc:
        raise ImageError("http_error", f"cannot fetch {url}: {exc}") from None


def read_image_bytes(
    reference: str, root: Path, max_bytes: int, allow_http: bool = False, timeout: float = 10.0
) -> bytes:
    """The bytes behind a manifest or folder image reference, or an ImageError saying why not."""
    if not reference:
        raise ImageError("no_image", "no image reference")
    scheme = urlparse(reference).scheme.lower()
    if scheme in ("http", "https"):
        if not allow_http:
            raise ImageError(
                "http_disabled", f"{reference}: fetching http(s) images is off (--allow-http)"
            )
        return _read_http(reference, max_bytes, timeout)
    if scheme == "file":
        local = Path(urlparse(reference).path)
        return _read_local(local, root, max_bytes)
    if scheme in REMOTE_SCHEMES:
        return _read_pyarrow(reference, max_bytes)
    if len(scheme) > 1:  # an unknown scheme (a single letter would be a Windows drive)
        raise ImageError("bad_reference", f"unsupported image reference scheme {scheme!r}")
    path = Path(reference)
    return _read_local(path if path.is_absolute() else root / path, root, max_bytes)
