"""Image references: resolution under a root (folder or URI), escapes refused, byte limits."""

from __future__ import annotations

import http.server
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pardus.deployments.catalogue import references
from pardus.deployments.catalogue.references import read_image_bytes, resolve_reference
from pardus.deployments.embedder.images import ImageError


def test_references_stay_under_the_root(tmp_path):
    root = tmp_path / "catalogue"
    (root / "img").mkdir(parents=True)
    (root / "img" / "a.jpg").write_bytes(b"abc")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    assert read_image_bytes("img/a.jpg", root, 100) == b"abc"
    assert read_image_bytes(str(root / "img" / "a.jpg"), root, 100) == b"abc"
    assert read_image_bytes(f"file://{root}/img/a.jpg", root, 100) == b"abc"
    for escape in ("../secret.jpg", str(tmp_path / "secret.jpg"), f"file://{tmp_path}/secret.jpg",
                   "img/../../secret.jpg"):
        with pytest.raises(ImageError) as info:
            read_image_bytes(escape, root, 100)
        assert info.value.reason == "path_escape"
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    with pytest.raises(ImageError, match="leaves the source folder"):
        read_image_bytes("link.jpg", root, 100)


def test_missing_large_and_unknown_scheme(tmp_path):
    (tmp_path / "big.jpg").write_bytes(b"x" * 101)
    cases = {"nope.jpg": "not_found", "big.jpg": "too_large", "ftp://host/x.jpg": "bad_reference",
             "": "no_image", "http://127.0.0.1:9/x.jpg": "http_disabled"}
    for reference, code in cases.items():
        with pytest.raises(ImageError) as info:
            read_image_bytes(reference, tmp_path, 100)
        assert info.value.reason == code, reference


def test_http_only_when_allowed_and_within_limits(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"picture")
    (tmp_path / "big.jpg").write_bytes(b"x" * 5000)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert read_image_bytes(f"{base}/a.jpg", tmp_path, 100, allow_http=True) == b"picture"
        for path, code in (("/big.jpg", "too_large"), ("/missing.jpg", "http_error")):
            with pytest.raises(ImageError) as info:
                read_image_bytes(base + path, tmp_path, 1000, allow_http=True)
            assert info.value.reason == code
    finally:
        server.shutdown()


@pytest.mark.parametrize("reference", ["../a.jpg", "images/../../a.jpg", "..", "/etc/passwd",
                                       "file:///etc/passwd", "file:///bucket/cat/a.jpg"])
def test_remote_references_never_leave_the_manifest_folder(reference):
    with pytest.raises(ImageError) as info:
        resolve_reference("s3://bucket/cat", reference)
    assert info.value.reason == "path_escape" and "s3://bucket/cat" in info.value.message


@settings(deadline=None)  # pure string logic; a loaded CI box must not fail it
@given(st.lists(st.sampled_from(["a", "b.jpg", ".", "..", ""]), min_size=1, max_size=6))
def test_resolved_references_stay_under_the_root(segments):
    reference = "/".join(segments)
    try:
        uri = resolve_reference("s3://bucket/cat", reference)
    except ImageError as exc:
        assert exc.reason == "path_escape"
        return
    assert uri.startswith("s3://bucket/cat/") and ".." not in uri.split("/")


@pytest.fixture
def no_local_reads(monkeypatch):
    """A file:// source must go through pyarrow like s3://, never the local-path branch."""
    def refuse(*args):
        raise AssertionError("a file:// source was read through the local-path branch")

    monkeypatch.setattr(references, "_read_local", refuse)


def test_references_under_a_file_uri_root(tmp_path, no_local_reads):
    root_path = tmp_path / "cat"
    (root_path / "img").mkdir(parents=True)
    (root_path / "img" / "a.jpg").write_bytes(b"abc")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root_path / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (root_path / "big.jpg").write_bytes(b"x" * 101)
    root = f"file://{root_path}"
    for reference in ("img/a.jpg", "./img/../img/a.jpg", f"file://{root_path}/img/a.jpg",
                      str(root_path / "img" / "a.jpg")):
        assert read_image_bytes(reference, root, 100) == b"abc", reference
    escapes = ("../secret.jpg", "img/../../secret.jpg", str(tmp_path / "secret.jpg"),
               f"file://{tmp_path}/secret.jpg", "link.jpg")
    cases = {**dict.fromkeys(escapes, "path_escape"), "img/nope.jpg": "not_found",
             "big.jpg": "too_large"}
    for reference, code in cases.items():
        with pytest.raises(ImageError) as info:
            read_image_bytes(reference, root, 100)
        assert info.value.reason == code, reference
    with pytest.raises(ImageError, match=f"image not found: file://{root_path}/img/nope.jpg"):
        read_image_bytes("img/nope.jpg", root, 100)


def test_local_paths_refused_beside_a_remote_root(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"abc")
    for reference in (str(tmp_path / "a.jpg"), f"file://{tmp_path}/a.jpg"):
        with pytest.raises(ImageError) as info:
            read_image_bytes(reference, "s3://bucket/cat", 100)
        assert info.value.reason == "path_escape"


@pytest.mark.parametrize(("reference", "code"), [
    ("//[x/a.jpg", "bad_reference"),  # urlparse: Invalid IPv6 URL
    ("img/a\x00.jpg", "bad_reference"),
    ("s3://bucket/cat/a.jpg?endpoint_override=evil.example&scheme=http", "bad_reference"),
    ("s3://bucket/cat/a.jpg#x", "bad_reference"),
    ("s3://other-bucket/a.jpg", "bucket_not_allowed"),
    ("gs://bucket/cat/a.jpg", "bucket_not_allowed"),  # same name, another store
])
def test_references_that_would_leave_the_source_are_refused(reference, code):
    with pytest.raises(ImageError) as info:
        read_image_bytes(reference, "s3://bucket/cat", 100)
    assert info.value.reason == code, info.value.message


def test_other_buckets_only_when_allowed(tmp_path):
    with pytest.raises(ImageError) as info:
        read_image_bytes("s3://images/a.jpg", tmp_path, 100)  # a local source names no bucket
    assert info.value.reason == "bucket_not_allowed" and "ALLOW_BUCKETS" in info.value.message
    with pytest.raises(ImageError) as info:  # allowed: it is read (and there is no S3 here)
        read_image_bytes("s3://images/a.jpg", tmp_path, 100, allow_buckets=["s3://images"])
    assert info.value.reason != "bucket_not_allowed"


def test_refusals_for_lack_of_rights_are_told_apart(monkeypatch):
    class Denied:
        def open_input_file(self, path):
            raise OSError("AWS Error ACCESS_DENIED during GetObject operation: Access Denied")

    with pytest.raises(ImageError) as info:
        references._read_from(Denied(), "b/a.jpg", "s3://b/a.jpg", 100)
    assert info.value.reason == "access_denied"


def test_http_follows_no_redirect_and_refuses_link_local(tmp_path):
    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(ImageError) as info:
            read_image_bytes(f"http://127.0.0.1:{server.server_address[1]}/a.jpg", tmp_path, 100,
                             allow_http=True)
        assert info.value.reason == "http_redirect" and "169.254.169.254" in info.value.message
    finally:
        server.shutdown()
    with pytest.raises(ImageError) as info:
        read_image_bytes("http://169.254.169.254/latest/meta-data/", tmp_path, 100,
                         allow_http=True, timeout=2)
    assert info.value.reason == "http_refused"
