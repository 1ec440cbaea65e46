"""Page cursors: what one carries comes back only to the search it belongs to."""

from __future__ import annotations

import json

import pytest

from pardus.deployments.catalogue.cursors import Cursor, CursorError, Cursors, _b64, search_digest

CURSORS = Cursors(b"a key")
DIGEST = search_digest({"text": "red mug"}, "hybrid", None, "relevance")
V1 = "products__v1"


def test_a_cursor_reads_back_for_its_own_search():
    text = CURSORS.write(Cursor(30, V1, DIGEST))
    assert CURSORS.read(text, V1, DIGEST) == Cursor(30, V1, DIGEST)
    assert text.isascii() and " " not in text and len(text) < 200


@pytest.mark.parametrize("change", [
    lambda t: t[:-3],  # cut short
    lambda t: t[:10] + ("A" if t[10] != "A" else "B") + t[11:],  # one character changed
    lambda t: t.replace(".", ""),  # no signature
    lambda t: "not a cursor",
    lambda t: "",
    lambda t: Cursors(b"another key").write(Cursor(30, V1, DIGEST)),  # signed elsewhere
])
def test_a_damaged_cursor_is_refused(change):
    text = change(CURSORS.write(Cursor(30, V1, DIGEST)))
    with pytest.raises(CursorError) as caught:
        CURSORS.read(text, V1, DIGEST)
    assert caught.value.code == "invalid_cursor" and caught.value.field == "cursor"


def test_another_search_or_version_is_refused_by_name():
    text = CURSORS.write(Cursor(30, V1, DIGEST))
    other = search_digest({"text": "blue mug"}, "hybrid", None, "relevance")
    with pytest.raises(CursorError) as mismatch:
        CURSORS.read(text, V1, other)
    assert mismatch.value.code == "cursor_mismatch"
    with pytest.raises(CursorError) as expired:
        CURSORS.read(text, "products__v2", DIGEST)
    assert expired.value.code == "cursor_expired"


def test_a_signed_but_senseless_payload_is_refused_not_a_crash():
    for payload in ([1, -5, V1, DIGEST], [1, "x", V1, DIGEST], {"a": 1}, [1, 2]):
        body = json.dumps(payload).encode()
        text = _b64(body) + "." + _b64(CURSORS._mac(body))
        with pytest.raises(CursorError):
            CURSORS.read(text, V1, DIGEST)


def test_the_digest_follows_every_part():
    base = ({"text": "red mug"}, "hybrid", {"dense": 1.0}, "relevance")
    assert search_digest(*base) == search_digest(*base)
    for i in range(len(base)):
        changed = list(base)
        changed[i] = "else"
        assert search_digest(*changed) != search_digest(*base)
