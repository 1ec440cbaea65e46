"""Resolve an image reference and read its bytes, within the source root and a size limit."""

from __future__ import annotations

import ipaddress
import os
import posixpath
import re
import socket
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlparse, urlsplit, urlunsplit

import httpx
from pyarrow import fs

from pardus.deployments.embedder.images import ImageError, ImageTooLarge, read_file
from pardus.deployments.streams import CappedBuffer, TooManyBytes
from pardus.deployments.uris import is_uri

REMOTE_SCHEMES = {"s3", "gs", "gcs", "abfs", "abfss", "hdfs", "file"}
# How object stores word a refusal for lack of rights (S3, GCS, Azure, HDFS through pyarrow).
_DENIED = re.compile(r"access ?denied|forbidden|permission|unauthori[sz]ed|credential|"
                     r"\b403\b|\b401\b", re.IGNORECASE)


def first_line(exc: Exception) -> str:
    """pyarrow errors can run to pages (hdfs lists every JVM path it tried)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _escape(reference: str, root: Path | str) -> ImageError:
    return ImageError("path_escape", f"image path {reference} leaves the source folder {root}")


def _read_local(path: Path, root: Path, max_bytes: int) -> bytes:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise _escape(str(path), root)
    return read_file(resolved, max_bytes)


def _read_from(filesystem, path: str, uri: str, max_bytes: int) -> bytes:
    try:
        with filesystem.open_input_file(path) as handle:
            if handle.size() > max_bytes:
                raise ImageTooLarge(f"{uri} is {handle.size()} bytes, over {max_bytes}")
            return handle.read()
    except ImageError:
        raise
    except FileNotFoundError:
        raise ImageError("not_found", f"image not found: {uri}") from None
    except Exception as exc:  # pyarrow raises OSError/ArrowException subclasses per backend
        text = first_line(exc)
        code = "access_denied" if _DENIED.search(text) else "unreadable"
        raise ImageError(code, f"cannot read {uri}: {text}") from None


def _read_pyarrow(uri: str, max_bytes: int) -> bytes:
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
    except Exception as exc:
        raise ImageError("unreadable", f"cannot read {uri}: {first_line(exc)}") from None
    return _read_from(filesystem, path, uri, max_bytes)


def _relative_to_root(reference: str, root: str) -> str:
    """A reference as a normalized path inside a folder URI; path_escape if it leaves the folder."""
    relative = reference
    if reference.startswith("/") or urlsplit(reference).scheme.lower() == "file":
        # a path on this machine: only inside a file:// root, never beside a remote one
        if urlsplit(root).scheme.lower() != "file":
            raise _escape(reference, root)
        relative = posixpath.relpath(urlsplit(reference).path, urlsplit(root).path or "/")
    relative = posixpath.normpath(relative)
    if relative == ".." or relative.startswith(("../", "/")):
        raise _escape(reference, root)
    return relative


def _join(root: str, relative: str) -> str:
    parts = urlsplit(root)
    return urlunsplit(parts._replace(path=f"{parts.path.rstrip('/')}/{relative}"))


def resolve_reference(root: str, reference: str) -> str:
    """The URI of a reference under a folder URI (s3://b/c + i/a.jpg -> s3://b/c/i/a.jpg).

    ImageError path_escape when the reference is absolute or `..` takes it out of the folder.
    """
    return _join(root, _relative_to_root(reference, root))


@lru_cache(maxsize=32)
def _root_filesystem(root: str):
    """(filesystem, path) of a folder URI, built once per worker (S3 may look up the region)."""
    try:
        return fs.FileSystem.from_uri(root)
    except Exception as exc:
        raise ImageError("unreadable", f"cannot open the source folder {root}: "
                                       f"{first_line(exc)}") from None


def _read_under_uri(reference: str, root: str, max_bytes: int) -> bytes:
    relative = _relative_to_root(reference, root)
    filesystem, base = _root_filesystem(root)
    path = f"{base.rstrip('/')}/{relative}"
    if isinstance(filesystem, fs.LocalFileSystem):  # file://: a symlink may point out of the folder
        if not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(base)):
            raise _escape(reference, root)
    return _read_from(filesystem, path, _join(root, relative), max_bytes)


def _refuse_link_local(url: str) -> None:
    """Cloud metadata endpoints live on link-local addresses (169.254.169.254, fe80::):
    a manifest's picture is never there."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return  # unresolvable: the request fails with its own message
    if any(ipaddress.ip_address(a.split("%")[0]).is_link_local for a in addresses):
        raise ImageError("http_refused", f"{url}: a link-local address (metadata endpoints "
                                         "live there) is never fetched")


def _read_http(url: str, max_bytes: int, timeout: float) -> bytes:
    """The bytes at url: no redirects followed (they could lead anywhere), one deadline for the
    whole download."""
    _refuse_link_local(url)
    deadline = time.monotonic() + timeout
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=False) as response:
            if response.is_redirect:
                raise ImageError("http_redirect", f"{url} redirects to "
                                 f"{response.headers.get('location', '?')}: give the final URL")
            if response.status_code != 200:
                raise ImageError("http_error", f"{url} answered HTTP {response.status_code}")
            data = CappedBuffer(max_bytes)
            for chunk in response.iter_bytes():
                data.add(chunk)
                if time.monotonic() > deadline:
                    raise ImageError("http_timeout", f"{url} took longer than {timeout:g} s")
            return data.value()
    except ImageError:
        raise
    except TooManyBytes:
        raise ImageTooLarge(f"{url} is over the limit of {max_bytes} bytes") from None
    except httpx.HTTPError as exc:
        raise ImageError("http_error", f"cannot fetch {url}: {exc}") from None


def _check_bucket(reference: str, root: Path | str, allow_buckets: Sequence[str]) -> None:
    """An object-store reference names the source's own bucket (or an allowed one), and no
    query: `?endpoint_override=...&scheme=http` would send the pod's credentials elsewhere."""
    parts = urlsplit(reference)
    if parts.query or parts.fragment:
        raise ImageError("bad_reference", f"image reference {reference!r} carries a query or "
                                          "fragment: object-store options come from the source")
    bucket = f"{parts.scheme.lower()}://{parts.netloc}"
    source = urlsplit(root) if isinstance(root, str) and is_uri(root) else None
    if source is not None and f"{source.scheme.lower()}://{source.netloc}" == bucket:
        return
    if bucket not in {b.rstrip("/") for b in allow_buckets}:
        raise ImageError("bucket_not_allowed", f"{reference} is in {bucket}, not the source's "
                         "bucket: allow it with PARDUS_INGEST__ALLOW_BUCKETS")


def read_image_bytes(
    reference: str, root: Path | str, max_bytes: int, allow_http: bool = False,
    timeout: float = 10.0, allow_buckets: Sequence[str] = (),
) -> bytes:
    """The bytes behind a manifest or folder image reference, or an ImageError saying why not.

    `root` is the source folder: a local path, or a folder URI (str) for a remote source.
    """
    try:
        return _read(reference, root, max_bytes, allow_http, timeout, allow_buckets)
    except ValueError as exc:  # "Invalid IPv6 URL", "embedded null byte": not a reference
        if isinstance(exc, ImageError):
            raise
        raise ImageError("bad_reference", f"image reference {reference[:200]!r} cannot be "
                                          f"read as a path or URL: {exc}") from None


def _read(reference: str, root: Path | str, max_bytes: int, allow_http: bool, timeout: float,
          allow_buckets: Sequence[str]) -> bytes:
    if not reference:
        raise ImageError("no_image", "no image reference")
    if "\x00" in reference:
        raise ImageError("bad_reference", "image reference contains a NUL character")
    scheme = urlparse(reference).scheme.lower()
    if scheme in ("http", "https"):
        if not allow_http:
            raise ImageError(
                "http_disabled", f"{reference}: fetching http(s) images is off (--allow-http)"
            )
        return _read_http(reference, max_bytes, timeout)
    if scheme in REMOTE_SCHEMES - {"file"}:
        _check_bucket(reference, root, allow_buckets)
        return _read_pyarrow(reference, max_bytes)
    if len(scheme) > 1 and scheme != "file":  # unknown (a single letter would be a Windows drive)
        raise ImageError("bad_reference", f"unsupported image reference scheme {scheme!r}")
    if isinstance(root, str) and is_uri(root):
        return _read_under_uri(reference, root, max_bytes)
    root = Path(root)
    path = Path(urlparse(reference).path if scheme == "file" else reference)
    return _read_local(path if path.is_absolute() else root / path, root, max_bytes)
