"""The item model's rules: id pattern, UTF-8 byte limits, unknown numbers; pure logic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pardus.deployments.catalogue.items import (
    MAX_TITLE_BYTES,
    UNKNOWN,
    CatalogueItem,
    ItemInvalid,
    check_id,
    clip_utf8,
    parse_number,
    utf8_len,
)
from pardus.ingest.sources import manifest_row
from pardus.serve.schemas import ItemIn

PIC = ("a.jpg",)


@pytest.mark.parametrize("item_id", ["a", "B0C1234XYZ", "sha256-" + "0" * 40, "a.b:c-d_e",
                                     "x" * 128])
def test_good_ids(item_id):
    assert CatalogueItem(id=item_id, images=PIC).id == item_id == check_id(item_id)


@pytest.mark.parametrize("item_id", ["", "-a", "a b", "a\nb", "abc\n", "x" * 129, "é", "a/b",
                                     "a\x00"])
def test_bad_ids_are_refused_everywhere(item_id):
    with pytest.raises(ValidationError):
        CatalogueItem(id=item_id, images=PIC)
    with pytest.raises(ItemInvalid) as info:
        check_id(item_id)
    assert info.value.code == "bad_id"
    with pytest.raises(ValidationError):
        ItemIn(id=item_id, image="eA==")
    row = manifest_row({"parent_asin": item_id, "images": ["a.jpg"]}, max_images=4)
    assert row["error"] == ("bad_id" if item_id else "bad_record")


def test_title_limit_counts_bytes_not_characters():
    fits = "é" * (MAX_TITLE_BYTES // 2)  # 2 bytes each: exactly the limit
    assert CatalogueItem(id="a", title=fits, images=PIC).title == fits
    with pytest.raises(ValidationError, match="bytes in UTF-8"):
        ItemIn(id="a", title=fits + "é", image="eA==")  # 513 characters, 1026 bytes
    item = CatalogueItem.from_source(id="a", title=fits + "é" * 10, images=PIC)  # ingest cuts
    assert item.title == fits


@given(st.text(max_size=400), st.integers(min_value=0, max_value=600))
def test_clip_never_splits_a_character_or_exceeds_the_limit(text, limit):
    clipped = clip_utf8(text, limit)
    assert utf8_len(clipped) <= limit and text.startswith(clipped)
    if utf8_len(text) <= limit:
        assert clipped == text


@pytest.mark.parametrize(("value", "expected"), [
    (None, UNKNOWN), ("None", UNKNOWN), (3, 3.0), ("$12.99", 12.99), ("1,299.50", 1299.5),
    (float("nan"), UNKNOWN), (float("inf"), UNKNOWN), (-2, UNKNOWN), (True, UNKNOWN),
    ([], UNKNOWN)])
def test_numbers_are_parsed_or_unknown(value, expected):
    assert parse_number(value) == expected
    assert CatalogueItem(id="a", price=value, images=PIC).price == expected


def test_source_rows_that_break_a_rule_name_it():
    for images in (("x" * 3000,), ("a\x00.jpg",), (), tuple(f"{i}.jpg" for i in range(9))):
        with pytest.raises(ItemInvalid) as info:
            CatalogueItem.from_source(id="a", images=images)
        assert info.value.code == "bad_image", images
    assert CatalogueItem.from_source(id="a", title="nul\x00inside", images=PIC).title == "nulinside"
    assert CatalogueItem(id="a", title="t", category="c", brand="b", images=PIC).words == "t\nc\nb"


def test_stored_rows_are_read_as_written():
    old = {"id": "an old id", "title": "t", "category": "", "brand": "", "price": -1.0,
           "rating": 2.0, "images": ["a.jpg"], "ingested_at": 5}
    item = CatalogueItem.stored(old)  # written before the id rules: shown, not refused
    assert item.id == "an old id" and CatalogueItem.known(item.price) is None
    assert item.images == ("a.jpg",)
