"""The last requests this gateway process answered, in memory, for the console's Requests page.

The audit log keeps every request for good (shared by all workers); this ring adds what the audit
log does not hold: TTFT, streaming, the error and the router's decision. It exists only while the
console is mounted (`Gateway.recent` is None otherwise); adding one costs a tuple and a deque append.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from waveidp.gateway.record import RequestRecord


@dataclass(frozen=True, slots=True)
class RecentRequest:
    ts: float  # wall clock when it was answered
    principal: str  # key name, token subject, "-" when refused before authentication
    request_id: str | None
    record: RequestRecord


class RecentRequests:
    def __init__(self, size: int = 2000) -> None:
        self._ring: deque[tuple[float, str, str | None, RequestRecord]] = deque(maxlen=size)

    def add(self, record: RequestRecord, principal: str, request_id: str | None) -> None:
        self._ring.append((time.time(), principal, request_id, record))

    def newest_first(self) -> Iterator[RecentRequest]:
        for entry in reversed(self._ring.copy()):
            yield RecentRequest(*entry)

    def by_id(self) -> dict[str, RecentRequest]:
        return {e[2]: RecentRequest(*e) for e in self._ring.copy() if e[2] is not None}

    def __len__(self) -> int:
        return len(self._ring)
