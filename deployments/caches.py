"""A small in-process cache: the newest `capacity` entries, each kept `ttl_s` seconds (LRU).
functools.lru_cache caches calls, not values put from elsewhere, and cannot forget one item's
entries: the reranker's captions and the ingress's thumbnails need both."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class LruCache:
    def __init__(self, capacity: int, ttl_s: float = math.inf):
        self.capacity, self.ttl_s = capacity, ttl_s
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()

    def get(self, key: Hashable) -> Any | None:
        found = self._items.get(key)
        if found is None or time.monotonic() - found[0] > self.ttl_s:
            return None
        self._items.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, value: Any) -> None:
        if self.capacity <= 0:
            return
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def forget(self, first: Hashable) -> None:
        """Drop every entry whose key (a tuple) starts with `first` (an item changed here)."""
        for key in [k for k in self._items if k[0] == first]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()
