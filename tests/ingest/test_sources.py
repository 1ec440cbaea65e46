"""Catalogue sources: manifests, folders and URIs, read into rows (pure logic + files)."""

from __future__ import annotations

import json

import pytest

from pardus.deployments.catalogue.references import resolve_reference
from pardus.ingest.sources import (
    Source,
    SourceError,
    folder_rows,
    manifest_row,
    parent_uri,
    parse_jsonl_line,
    pick_images,
)


def test_amazon_record_becomes_a_row_with_its_pictures_main_first():
    row = manifest_row({
        "parent_asin": "B01", "title": "Leopard case", "main_category": "Cell Phones",
        "store": "Acme", "price": "$12.99", "average_rating": 4.4,
        "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "PT01", "hi_res": None},
                   {"thumb": "t0.jpg", "large": "main.jpg", "variant": "MAIN", "hi_res": "hi.jpg"},
                   {"thumb": "t2.jpg", "variant": "PT02"}, {"large": "l.jpg", "variant": "PT03"}],
    }, max_images=4)
    assert row == {"id": "B01", "title": "Leopard case", "category": "Cell Phones",
                   "brand": "Acme", "price": 12.99, "rating": 4.4, "in_stock": None,
                   "popularity": -1.0, "added_at": 0,
                   "images": json.dumps(["main.jpg", "l.jpg", "t2.jpg"]), "error": "",
                   "message": ""}
    assert json.loads(manifest_row({"parent_asin": "B", "images": [f"{i}.jpg" for i in range(9)]},
                                   max_images=2)["images"]) == ["0.jpg", "1.jpg"]


@pytest.mark.parametrize(("price", "expected"), [(None, -1.0), ("None", -1.0), (3, 3.0),
                                                 ("1,299.50", 1299.5), (float("nan"), -1.0), (-2, -1.0)])
def test_prices_are_parsed_or_unknown(price, expected):
    record = {"parent_asin": "x", "images": ["a.jpg"], "price": price}
    assert manifest_row(record, max_images=4)["price"] == expected


def test_image_lists_in_other_shapes():
    assert pick_images({"large": ["a.jpg", "b.jpg"], "thumb": ["ta", "tb"]}, 4) == ["a.jpg", "b.jpg"]
    assert pick_images([{"thumb": "only-thumb.jpg"}], 4) == ["only-thumb.jpg"]
    assert pick_images("x.png", 4) == ["x.png"] and pick_images([], 4) == []
    assert pick_images(None, 4) == [] and pick_images([{"variant": "MAIN"}, 7], 4) == []


@pytest.mark.parametrize(
    ("line", "code"),
    [("not json", "bad_record"), ("[1, 2]", "bad_record"), ('{"title": "no id"}', "bad_record"),
     ('{"parent_asin": "A", "images": []}', "no_image")],
)
def test_bad_manifest_lines_are_error_rows(line, code):
    assert parse_jsonl_line(line, 4)["error"] == code
    assert parse_jsonl_line("   ", 4) is None


def test_folder_rows_use_subfolders_as_categories(tmp_path):
    (tmp_path / "Mugs").mkdir()
    (tmp_path / "Mugs" / "red_mug-1.jpg").write_bytes(b"x")
    (tmp_path / "top.png").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / ".hidden.jpg").write_bytes(b"x")
    rows = folder_rows(Source.open(tmp_path))
    assert [(json.loads(r["images"])[0], r["category"], r["title"]) for r in rows] == [
        ("Mugs/red_mug-1.jpg", "Mugs", "red mug 1"), ("top.png", "", "top")]
    assert all(r["id"] == "" for r in rows)  # content hashes come when the bytes are read


def test_source_errors(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        Source.open(tmp_path / "nope")
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(SourceError, match="neither a folder nor a manifest"):
        Source.open(tmp_path / "x.csv")
    assert Source.open(tmp_path).kind == "folder"


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
    assert [json.loads(r["images"]) for r in rows] == [["Mugs/deep/b.png"], ["Mugs/red_mug-1.jpg"],
                                                      ["top.png"]]


@pytest.mark.parametrize(("record", "expected"), [
    ({}, (None, -1.0, 0)),
    ({"in_stock": False, "rating_number": 1520}, (False, 1520.0, 0)),
    ({"in_stock": "Out of stock", "popularity": 7, "rating_number": 1520}, (False, 7.0, 0)),
    ({"in_stock": "true", "added_at": 1700000000}, (True, -1.0, 1700000000)),
    ({"added_at": "2024-03-04"}, (None, -1.0, 1709510400)),
    ({"details": {"Date First Available": "March 4, 2024"}}, (None, -1.0, 1709510400)),
    ({"added_at": "not a date", "rating_number": "n/a"}, (None, -1.0, 0)),
])
def test_business_signals_are_read_or_left_unsaid(record, expected):
    """in_stock, popularity (else rating_number) and added_at (else Amazon's first-available
    date); what a record does not say stays unsaid (ingest fills defaults, an attribute
    update keeps the stored value)."""
    row = manifest_row({"parent_asin": "x", "images": ["a.jpg"], **record}, max_images=4)
    assert (row["in_stock"], row["popularity"], row["added_at"]) == expected
