"""Sources and image references: manifests, folders, root escapes, schemes (pure logic + files)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import pytest

from deployments.embedder.images import ImageError
from ingest.fetch import read_image_bytes
from ingest.sources import Source, SourceError, folder_rows, manifest_row, parse_jsonl_line, pick_image


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
