"""Server-sent events as the engines send them: blocks separated by a blank line, each with an
optional `event:` line and `data:` lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

DONE = "[DONE]"


def encode(name: str | None, data: Any) -> bytes:
    """One event: `event: name` (when given) and one `data:` line of JSON."""
    body = b"data: " + orjson.dumps(data) + b"\n\n"
    return b"event: " + name.encode() + b"\n" + body if name else body


def data_of(block: bytes) -> bytes | None:
    """The data of one event block (its `data:` lines joined by newlines); None without any."""
    lines = [line[5:].lstrip(b" ") for line in block.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


def payloads(events: bytes) -> Iterator[Any]:
    """The JSON payload of each complete event in `events` (`DONE` for `data: [DONE]`); events
    whose data is not JSON are skipped (comments, keep-alives)."""
    for block in events.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = data_of(block)
        if data is None:
            continue
        if data.strip() == b"[DONE]":
            yield DONE
            continue
        try:
            yield orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
