"""Cursors of result pages: opaque, signed, bound to the search they continue.

A cursor holds how many products the earlier pages showed, the catalogue version they came
from, and a digest of everything that decides the ranking (the query, filters, mode, weights,
sort, refinements, boosts, cut-off). The next page is the same ranking from that position:
the service ranks the same candidates the same way, so a cursor from another search, another
version or a changed one is refused, never answered with a wrong page.

Written by hand: it is a few lines of hmac and base64, and no library fits the binding.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

from pardus.deployments.errors import BadQuery

FORMAT = 1
MAC_BYTES = 16
MAX_OFFSET = 1_000_000


class CursorError(BadQuery):
    """A cursor that cannot continue this search (the code says why)."""

    code = "invalid_cursor"


@dataclass(frozen=True)
class Cursor:
    offset: int  # products the earlier pages showed
    version: str  # the catalogue version (collection) they came from
    digest: str  # of the search they belong to (search_digest)


def search_digest(*parts: object) -> str:
    """A digest of what decides a ranking; parts are JSON-able (models dumped by the caller)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Cursors:
    """Writes and reads cursors under one key (the same on every replica of a service)."""

    def __init__(self, key: bytes):
        self.key = key

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self.key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def write(self, cursor: Cursor) -> str:
        payload = json.dumps([FORMAT, cursor.offset, cursor.version, cursor.digest],
                             separators=(",", ":")).encode()
        return _b64(payload) + "." + _b64(self._mac(payload))

    def read(self, text: str, version: str | None, digest: str) -> Cursor:
        """The cursor, if it continues this search on this version; CursorError if not."""
        try:
            body, mac = text.split(".")
            payload = _unb64(body)
            valid = hmac.compare_digest(self._mac(payload), _unb64(mac))
        except ValueError:
            valid = False
        if not valid:
            raise CursorError("the cursor is not one this service wrote (changed or cut "
                              "short): start again from the first page", field="cursor")
        try:  # signed by us; a key that is not secret still must not crash the read
            kind, offset, cursor_version, cursor_digest = json.loads(payload)
            if not (isinstance(offset, int) and 0 <= offset <= MAX_OFFSET):
                raise ValueError(offset)
        except (ValueError, TypeError):
            raise CursorError("the cursor cannot be read: start again from the first page",
                              field="cursor") from None
        if kind != FORMAT:
            raise CursorError("the cursor is from another release: start again from the "
                              "first page", field="cursor")
        if cursor_digest != digest:
            raise CursorError("the cursor belongs to another search (query, filters, mode, "
                              "weights, sort or refinements differ): send the search it came "
                              "with, or start again", code="cursor_mismatch", field="cursor")
        if cursor_version != version:
            raise CursorError("the catalogue changed version since this cursor's first page: "
                              "start again from the first page", code="cursor_expired",
                              field="cursor")
        return Cursor(int(offset), cursor_version, cursor_digest)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
