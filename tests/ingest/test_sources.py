"""Sources and image references: manifests, folders, root escapes, schemes (pure logic + files)."""

from __future__ import annotations

import http.server
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployments.embedder.images import ImageError
from ingest import fetch
from ingest.fetch import read_image_bytes, resolve_reference
from ingest.sources import (Source, SourceError, folder_rows, manifest_row, parent_uri,
                            parse_jsonl_line, pick_image)


def test_amazon_record_becomes_a_row():
    row = manifest_row({
        "parent_asin": "B01", "title": "Leopard case", "main_category": "Cell Phones",
        "price": "$12.99", "average_rating": 4.4,
        "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "PT01", "hi_res": None},
                   {"thumb": "t0.jpg", "large": "main.jpg", "variant": "MAIN", "hi_res": "hi.jpg"}],
    })
    assert row == {"id": "B01", "title": "Leopard case", "category": "Cell Phones", "price": 12.99,
                   "rating": 4.4, "image": "main.jpg", "error": "", "message": ""}


@pytest.mark.parametrize(("price", "expected"), [(None, -1.0), ("None", -1.0), (3, 3.0),
                                                 ("1,299.50", 1299.5), (float("nan"), -1.0), (-2, -1.0)])
def test_prices_are_parsed_or_unknown(price, expected):
    assert manifest_row({"parent_asin": "x", "images": ["a.jpg"], "price": price})["price"] == expected


def test_image_lists_in_other_shapes():
    assert pick_image({"large": ["a.jpg", "b.jpg"], "thumb": ["ta", "tb"]}) == "a.jpg"
    assert pick_image([{"thumb": "only-thumb.jpg"}]) == "only-thumb.jpg"
    assert pick_image("x.png") == "x.png" and pick_image([]) == "" and pick_image(None) == ""


@pytest.mark.parametrize(
    ("line", "code"),
    [("not json", "bad_record"), ("[1, 2]", "bad_record"), ('{"title": "no id"}', "bad_record"),
     ('{"parent_asin": "A", "images": []}', "no_image")],
)
def test_bad_manifest_lines_are_error_rows(line, code):
    assert parse_jsonl_line(line)["error"] == code
    assert parse_jsonl_line("   ") is None


def test_folder_rows_use_subfolders_as_categories(tmp_path):
    (tmp_path / "Mugs").mkdir()
    (tmp_path / "Mugs" / "red_mug-1.jpg").write_bytes(b"x")
    (tmp_path / "top.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    rows = folder_rows(Source.open(tmp_path))
    assert [(r["image"], r["category"], r["title"]) for r in rows] == [
        ("Mugs/red_mug-1.jpg", "Mugs", "red mug 1"), ("top.png", "", "top")]
    assert all(r["id"] == "" for r in rows)  # content hashes come when the bytes are read


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        Source.open(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(SourceError, match="neither a folder nor a manifest"):
        Source.open(tmp_path / "x.csv")
    assert Source.open(tmp_path).kind == "folder"


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
        assert info.value.code == "path_escape"
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
        assert info.value.code == code, reference


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
            assert info.value.code == code
    finally:
        server.shutdown()


@pytest.mark.parametrize(("manifest", "reference", "expected"), [
    ("s3://bucket/cat/items.jsonl", "images/a.jpg", "s3://bucket/cat/images/a.jpg"),
    ("s3://bucket/cat/items.jsonl", "./images/x/../a.jpg", "s3://bucket/cat/images/a.jpg"),
    ("s3://bucket/items.jsonl", "a.jpg", "s3://bucket/a.jpg"),
    ("gs://bucket/cat/items.parquet?anonymous=true", "b c.png",
     "gs://bucket/cat/b c.png?anonymous=true"),
    ("abfs://box@acct.dfs.core.windows.net/cat/items.jsonl", "i/a.jpg",
     "abfs://box@acct.dfs.core.windows.net/cat/i/a.jpg"),
    ("hdfs://namenode:8020/data/cat/items.jsonl", "a.jpg", "hdfs://namenode:8020/data/cat/a.jpg"),
])
def test_remote_references_resolve_in_the_manifest_folder(manifest, reference, expected):
    assert resolve_reference(parent_uri(manifest), reference) == expected


@pytest.mark.parametrize("reference", ["../a.jpg", "images/../../a.jpg", "..", "/etc/passwd",
                                       "file:///etc/passwd", "file:///bucket/cat/a.jpg"])
def test_remote_references_never_leave_the_manifest_folder(reference):
    with pytest.raises(ImageError) as info:
        resolve_reference("s3://bucket/cat", reference)
    assert info.value.code == "path_escape" and "s3://bucket/cat" in info.value.message


@settings(deadline=None)  # pure string logic; a loaded CI box must not fail it
@given(st.lists(st.sampled_from(["a", "b.jpg", ".", "..", ""]), min_size=1, max_size=6))
def test_resolved_references_stay_under_the_root(segments):
    reference = "/".join(segments)
    try:
        uri = resolve_reference("s3://bucket/cat", reference)
    except ImageError as exc:
        assert exc.code == "path_escape"
        return
    assert uri.startswith("s3://bucket/cat/") and ".." not in uri.split("/")


@pytest.fixture
def no_local_reads(monkeypatch):
    """A file:// source must go through pyarrow like s3://, never the local-path branch."""
    def refuse(*args):
        raise AssertionError("a file:// source was read through the local-path branch")

    monkeypatch.setattr(fetch, "_read_local", refuse)


def test_file_uri_sources_open_through_pyarrow(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "items.jsonl").write_text("{}\n")
    (tmp_path / "cat" / "items.parquet").write_bytes(b"")
    manifest = Source.open(f"file://{tmp_path}/cat/items.jsonl")
    assert (manifest.kind, manifest.location, manifest.root) == (
        "jsonl", f"file://{tmp_path}/cat/items.jsonl", f"file://{tmp_path}/cat")
    assert manifest.remote and Source.open(f"file://{tmp_path}/cat/items.parquet").kind == "parquet"
    folder = Source.open(f"file://{tmp_path}/cat/")
    assert (folder.kind, folder.root) == ("folder", f"file://{tmp_path}/cat")
    assert not Source.open(tmp_path / "cat").remote


def test_missing_or_unusable_uri_sources_name_the_uri(tmp_path):
    (tmp_path / "x.csv").write_text("a,b")
    cases = {f"file://{tmp_path}/nope.jsonl": "does not exist",
             f"file://{tmp_path}/x.csv": "neither a folder nor a manifest",
             "nosuch://bucket/items.jsonl": "cannot open source"}
    for uri, message in cases.items():
        with pytest.raises(SourceError, match=message) as info:
            Source.open(uri)
        assert uri in str(info.value)


def test_uri_folder_lists_like_a_local_folder(tmp_path):
    (tmp_path / "Mugs" / "deep").mkdir(parents=True)
    for name in ("Mugs/red_mug-1.jpg", "Mugs/deep/b.png", "top.png", "notes.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    rows = folder_rows(Source.open(f"file://{tmp_path}"))
    assert rows == folder_rows(Source.open(tmp_path))
    assert [r["image"] for r in rows] == ["Mugs/deep/b.png", "Mugs/red_mug-1.jpg", "top.png"]


def test_references_under_a_file_uri_root(tmp_path, no_local_reads):
    root_path = tmp_path / "cat"
    (root_path / "img").mkdir(parents=True)
    (root_path / "img" / "a.jpg").write_bytes(b"abc")
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (root_path / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    (root_path / "big.jpg").write_bytes(b"x" * 101)
    root = Source.open(f"file://{root_path}/").root
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
        assert info.value.code == code, reference
    with pytest.raises(ImageError, match=f"image not found: file://{root_path}/img/nope.jpg"):
        read_image_bytes("img/nope.jpg", root, 100)


def test_local_paths_refused_beside_a_remote_root(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"abc")
    for reference in (str(tmp_path / "a.jpg"), f"file://{tmp_path}/a.jpg"):
        with pytest.raises(ImageError) as info:
            read_image_bytes(reference, "s3://bucket/cat", 100)
        assert info.value.code == "path_escape"
