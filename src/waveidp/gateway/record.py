"""What happened to one request: the input to metrics and to the guard's accounting (no prompt text)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    model: str
    endpoint: str
    backend: str | None
    status: int
    stream: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    duration_s: float
    error: str | None = None
