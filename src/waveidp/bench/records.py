"""What the client records about one request: times only, no interpretation.

All times are `time.perf_counter()` seconds (CLOCK_MONOTONIC on Linux, so comparable across
processes on one machine). The metric modules in `waveidp.bench.metrics` turn these into numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ErrorKind = Literal[
    "connect", "http", "timeout", "disconnect", "bad_sse", "server_error", "empty", "cancelled"
]
TokenSource = Literal["usage", "chunks"]


@dataclass(slots=True)
class RequestRecord:
    """One request's timeline.

    `scheduled` is when the load shape wanted the request sent; every latency is measured from it
    (no coordinated omission). `sent` is when the client actually started sending; the difference
    is client lag. `content_times` holds the arrival time of every chunk that carried non-empty
    content; `done` is when the last byte arrived.
    """

    scheduled: float
    sent: float | None = None
    content_times: list[float] = field(default_factory=list)
    done: float | None = None
    input_tokens: int | None = None
    input_token_source: Literal["usage", "approx"] | None = None
    output_tokens_usage: int | None = None
    error: ErrorKind | None = None
    error_detail: str | None = None
    status: int | None = None
    warmup: bool = False
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.error is None and self.done is not None and bool(self.content_times)

    @property
    def output_tokens(self) -> int:
        """Server `usage.completion_tokens` when it sent one, else the number of content chunks."""
        if self.output_tokens_usage is not None:
            return self.output_tokens_usage
        return len(self.content_times)

    @property
    def output_token_source(self) -> TokenSource:
        return "usage" if self.output_tokens_usage is not None else "chunks"
