"""A few seconds of memory for the audit log's aggregates: the Keys page scans the last day of the
log (tens of milliseconds per 10k rows on a busy machine), and several reloads in a row, or several
tabs, need not scan it again."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any


class TtlCache:
    def __init__(self, ttl_s: float, size: int = 64) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        hit = self._items.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        value = compute()
        if len(self._items) >= self.size:
            self._items = {k: v for k, v in self._items.items() if now - v[0] < self.ttl_s}
        self._items[key] = (now, value)
        return value
