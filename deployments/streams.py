"""Reading a stream under a byte limit: one counter for every capped read (request bodies,
fetched images), so a client or a server that sends too much is stopped as it happens."""

from __future__ import annotations


class TooManyBytes(ValueError):
    """A stream went past its limit; each reader turns this into its own error."""

    def __init__(self, limit: int):
        super().__init__(f"over the limit of {limit} bytes")
        self.limit = limit


class CappedBuffer:
    """Chunks gathered until `limit` bytes: `add` raises TooManyBytes past it."""

    def __init__(self, limit: int):
        self.limit = limit
        self._data = bytearray()

    def add(self, chunk: bytes) -> None:
        self._data += chunk
        if len(self._data) > self.limit:
            raise TooManyBytes(self.limit)

    def value(self) -> bytes:
        return bytes(self._data)
