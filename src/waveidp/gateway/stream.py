"""SSE pass-through: forward each upstream read as soon as it holds complete events.

Nothing is parsed per chunk except by cheap byte searches: the first content token (TTFT), a
count of content events (a token estimate when the engine sends no usage) and the events that
carry `"usage"`, which are parsed. When the gateway itself added
`stream_options.include_usage`, that usage-only event is dropped so the client sees the stream
it asked for. Timeouts: the gap between chunks and the total duration; a failure after the first
byte ends the stream with an error event (and `[DONE]` on chat streams). What the relay saw
(tokens, usage, the error) is accounted by the request's `Exchange` once the stream has ended.

The same relay carries Responses and Messages streams, passed through (their end is
`response.completed` / `message_stop`, their usage nested in the event) or translated from a
chat stream (`translation`: the complete events go through it before they are sent).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import orjson
from starlette.types import Send

from waveidp.fleet.models import GatewayConfig
from waveidp.gateway.backends import BackendState, Work
from waveidp.gateway.errors import stream_error
from waveidp.gateway.request_info import Endpoint
from waveidp.gateway.translation import Translation

# A content event: chat's `content`/`text`, Responses' `delta`, Messages' `text`/`partial_json`.
_CONTENT = re.compile(rb'"(?:content|text|delta|partial_json|thinking)":\s?"(?!")')
_USAGE = re.compile(rb'"usage":\s?\{')
# How each upstream route's stream says it is complete (chat and completions: `data: [DONE]`).
_ENDS = {
    "responses": re.compile(rb'"type":\s?"response\.(?:completed|incomplete|failed)"'),
    "messages": re.compile(rb'"type":\s?"message_stop"'),
}
_MAX_TAIL = 1 << 20  # an event larger than this is forwarded in pieces rather than held
EARLY_ITL_EVENTS = 8  # after this many content events a stream reports its ITL so far to the router


def usage_tokens(usage: dict[str, Any]) -> tuple[int | None, int | None]:
    """(prompt, completion) tokens of a usage object of any of the APIs (OpenAI's chat and
    completions name them prompt/completion, Responses and Anthropic input/output)."""
    p = usage.get("prompt_tokens", usage.get("input_tokens"))
    c = usage.get("completion_tokens", usage.get("output_tokens"))
    return (p if isinstance(p, int) else None), (c if isinstance(c, int) else None)


def extract_usage(body: bytes) -> dict[str, Any] | None:
    """The `usage` object of a JSON answer, parsing only that object."""
    m = _USAGE.search(body)
    if m is None:
        return None
    start = m.end() - 1
    end = body.find(b"}", start)
    # usage may nest one level (`prompt_tokens_details`): extend to the brace that balances
    while end != -1 and body.count(b"{", start, end) > body.count(b"}", start, end + 1):
        end = body.find(b"}", end + 1)
    if end == -1:
        return None
    try:
        usage = orjson.loads(body[start : end + 1])
    except orjson.JSONDecodeError:
        return None
    return usage if isinstance(usage, dict) else None


class StreamRelay:
    """Relays one upstream SSE stream, from its first chunk on, to the client."""

    __slots__ = (
        "arrived",
        "b",
        "client_endpoint",
        "config",
        "content_events",
        "done",
        "end",
        "error",
        "first",
        "first_token",
        "injected",
        "last_token",
        "resp",
        "sent",
        "tail",
        "translator",
        "usage",
        "work",
    )

    def __init__(
        self,
        config: GatewayConfig,
        backend: BackendState,
        work: Work,
        resp: aiohttp.ClientResponse,
        first: bytes,
        sent: float,
        injected: bool,
        client_endpoint: Endpoint = "chat",
        upstream_endpoint: Endpoint = "chat",
        translation: Translation | None = None,
        arrived: float | None = None,
    ) -> None:
        self.config = config
        self.client_endpoint = client_endpoint  # whose error event ends a broken stream
        self.end = _ENDS.get(upstream_endpoint)  # None: `data: [DONE]`
        self.translator = translation.stream() if translation is not None else None
        self.b = backend
        self.work = work
        self.resp = resp
        self.first = first
        self.sent = sent  # perf_counter when the upstream request went out
        # perf_counter when `first` came: the client's answer head goes out before it is relayed,
        # and the events it holds are timed from then, not from when the relay gets to them (on a
        # busy or cold gateway that is tens of ms later, the next events then arrive bunched, and
        # the router would learn a slow first token and no ITL)
        self.arrived = arrived if arrived is not None else time.perf_counter()
        self.injected = injected
        self.tail = b""
        self.first_token: float | None = None  # perf_counter of the first content event
        self.last_token: float | None = None
        self.content_events = 0
        self.usage: dict[str, Any] | None = None
        self.done = False  # `[DONE]` came
        self.error: str | None = None  # why the stream ended with an error event

    async def pump(self, send: Send, extra_headers: dict[str, str]) -> None:
        """Send the answer's head, every complete event as it comes, then the end: the last
        events, or an error event and `[DONE]` when the backend failed or went quiet."""
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
            (b"x-wave-backend", self.b.name.encode()),
        ]
        for k, v in extra_headers.items():
            headers.append((k.lower().encode("latin-1"), v.encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        cfg = self.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.total_timeout_s - (time.perf_counter() - self.sent)
        content = self.resp.content
        chunk, at = self.first, self.arrived
        try:
            async with asyncio.timeout(None) as timer:
                while chunk:
                    out = self._take(chunk, at)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    timer.reschedule(min(loop.time() + cfg.chunk_gap_timeout_s, deadline))
                    chunk = await content.readany()
                    at = time.perf_counter()
        except TimeoutError:
            total = loop.time() >= deadline - 0.001
            self.error = (
                f"backend {self.b.name} exceeded the total time limit of {cfg.total_timeout_s:g}s"
                if total
                else f"backend {self.b.name} sent nothing for {cfg.chunk_gap_timeout_s:g}s"
            )
        except aiohttp.ClientError as exc:
            self.error = f"backend {self.b.name} broke the stream: {type(exc).__name__}: {exc}"
        if self.error is None and not self.done:
            self.error = f"backend {self.b.name} ended the stream before its end event"
        if self.translator is not None:
            tail = self.translator.feed(self.tail) + self.translator.close(self.error)
        elif self.error is not None:
            tail = stream_error(self.client_endpoint, self.error)
        else:
            tail = self.tail
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    def _take(self, chunk: bytes, now: float) -> bytes:
        """Complete events of `tail + chunk` (scanned), keeping an incomplete last one back;
        `chunk` came at `now` (perf_counter)."""
        buf = self.tail + chunk if self.tail else chunk
        cut = buf.rfind(b"\n\n")
        if cut < 0:
            if len(buf) < _MAX_TAIL:
                self.tail = buf
                return b""
            cut = len(buf) - 2
        out, self.tail = buf[: cut + 2], buf[cut + 2 :]
        n = len(_CONTENT.findall(out))
        if n:
            if self.first_token is None:
                self.first_token = now
                self.b.first_token(self.work, now - self.sent)  # the router learns at once
            self.last_token = now
            before = self.content_events
            self.content_events += n
            if before < EARLY_ITL_EVENTS <= self.content_events:
                self.b.itl.observe((now - self.first_token) / (self.content_events - 1))
                at = time.monotonic() - (time.perf_counter() - now)
                self.b.progress(self.work, self.content_events, at)  # learning
        if _USAGE.search(out):
            out = self._read_usage(out)
        if not self.done and (b"data: [DONE]" in out if self.end is None else self.end.search(out)):
            self.done = True
        return out if self.translator is None else self.translator.feed(out)

    def _read_usage(self, out: bytes) -> bytes:
        kept: list[bytes] = []
        for event in out.split(b"\n\n"):
            if _USAGE.search(event) and event.startswith(b"data:"):
                try:
                    data = orjson.loads(event[5:])
                except orjson.JSONDecodeError:
                    kept.append(event)
                    continue
                usage = _usage_of(data) if isinstance(data, dict) else None
                if usage is not None:
                    # Messages streams count in two events (input in message_start, output in
                    # message_delta); a later count replaces an earlier one of the same name.
                    self.usage = {**self.usage, **usage} if self.usage else usage
                    if self.injected and not data.get("choices"):
                        continue
            kept.append(event)
        return b"\n\n".join(kept)

    def tokens(self) -> tuple[int | None, int | None]:
        """(prompt, completion) tokens: the engine's usage, else the content events counted."""
        prompt, completion = usage_tokens(self.usage or {})
        return prompt, completion if completion is not None else (self.content_events or None)

    def itl_s(self, completion: int | None) -> float | None:
        """The mean time per output token after the first, when there were two or more."""
        if (
            completion
            and completion > 1
            and self.first_token is not None
            and self.last_token is not None
            and self.last_token > self.first_token
        ):
            return (self.last_token - self.first_token) / (completion - 1)
        return None


def _usage_of(event: dict[str, Any]) -> dict[str, Any] | None:
    """The usage an event carries: at its top (chat, Messages' message_delta), or in the object
    it wraps (Responses' `response`, Messages' `message`)."""
    for holder in (event, event.get("response"), event.get("message")):
        if isinstance(holder, dict) and isinstance(holder.get("usage"), dict):
            return holder["usage"]
    return None
