"""SSE pass-through: forward each upstream read as soon as it holds complete events.

Nothing is parsed per chunk except by cheap byte searches: the first content token (TTFT), a
count of content events (a token estimate when the engine sends no usage) and the one event
that carries `"usage"`, which is parsed. When the gateway itself added
`stream_options.include_usage`, that usage-only event is dropped so the client sees the stream
it asked for. Timeouts: the gap between chunks and the total duration; a failure after the first
byte ends the stream with an error event and `[DONE]`.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from starlette.types import Message, Receive, Scope, Send

from waveidp.gateway.backends import BackendState
from waveidp.gateway.errors import sse_error_event
from waveidp.gateway.record import RequestRecord

if TYPE_CHECKING:
    from waveidp.gateway.forward import Exchange

log = logging.getLogger("waveidp.gateway")

_CONTENT = re.compile(rb'"(?:content|text)":\s?"(?!")')
_USAGE = re.compile(rb'"usage":\s?\{')
_MAX_TAIL = 1 << 20  # an event larger than this is forwarded in pieces rather than held
EARLY_ITL_EVENTS = 8  # after this many content events a stream reports its ITL so far to the router


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
    """An ASGI response that relays one upstream SSE stream to the client."""

    def __init__(
        self,
        ex: Exchange,
        backend: BackendState,
        resp: aiohttp.ClientResponse,
        first: bytes,
        sent: float,
        injected: bool,
    ) -> None:
        self.ex = ex
        self.b = backend
        self.resp = resp
        self.first = first
        self.sent = sent  # perf_counter when the upstream request went out
        self.injected = injected
        self.tail = b""
        self.first_token: float | None = None
        self.last_token: float | None = None
        self.content_events = 0
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.error: str | None = None
        self.client_gone = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        assert task is not None
        watcher = asyncio.ensure_future(self._watch(receive, task))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-cache"),
                        (b"x-accel-buffering", b"no"),
                        (b"x-wave-backend", self.b.name.encode()),
                    ],
                }
            )
            await self._pump(send)
        except asyncio.CancelledError:
            if not self.client_gone:
                raise
            task.uncancel()
        finally:
            watcher.cancel()
            await self._finish()

    async def _watch(self, receive: Receive, task: asyncio.Task[Any]) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                task.cancel()
                return

    async def _pump(self, send: Send) -> None:
        gw = self.ex.gw
        cfg = gw.config
        loop = asyncio.get_running_loop()
        deadline = loop.time() + cfg.total_timeout_s - (time.perf_counter() - self.sent)
        content = self.resp.content
        chunk = self.first
        try:
            async with asyncio.timeout(None) as timer:
                while chunk:
                    out = self._take(chunk)
                    if out:
                        await send({"type": "http.response.body", "body": out, "more_body": True})
                    timer.reschedule(min(loop.time() + cfg.chunk_gap_timeout_s, deadline))
                    chunk = await content.readany()
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
            self.error = f"backend {self.b.name} ended the stream without [DONE]"
        if self.error is not None:
            self.b.breaker.on_failure(time.monotonic())
            gw.metrics.stream_errors.labels(self.ex.info.model if self.ex.info else "", self.b.name).inc()
            log.warning("stream of %s failed after the first byte: %s", self.b.name, self.error)
            tail = sse_error_event(self.error, "upstream_stream_error")
        else:
            tail = self.tail
        await send({"type": "http.response.body", "body": tail, "more_body": False})

    def _take(self, chunk: bytes) -> bytes:
        """Complete events of `tail + chunk` (scanned), keeping an incomplete last one back."""
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
            now = time.perf_counter()
            if self.first_token is None:
                self.first_token = now
                self.b.first_token(self.ex.info, now - self.sent)  # the router learns at once
            self.last_token = now
            before = self.content_events
            self.content_events += n
            if before < EARLY_ITL_EVENTS <= self.content_events:
                self.b.itl.observe((now - self.first_token) / (self.content_events - 1))
                self.b.progress(self.ex.info, self.content_events, time.monotonic())  # learning
        if _USAGE.search(out):
            out = self._read_usage(out)
        if not self.done and b"data: [DONE]" in out:
            self.done = True
        return out

    def _read_usage(self, out: bytes) -> bytes:
        kept: list[bytes] = []
        for event in out.split(b"\n\n"):
            if _USAGE.search(event) and event.startswith(b"data:"):
                try:
                    data = orjson.loads(event[5:])
                except orjson.JSONDecodeError:
                    kept.append(event)
                    continue
                if isinstance(data, dict) and isinstance(data.get("usage"), dict):
                    self.usage = data["usage"]
                    if self.injected and not data.get("choices"):
                        continue
            kept.append(event)
        return b"\n\n".join(kept)

    async def _finish(self) -> None:
        b, ex = self.b, self.ex
        info = ex.info
        assert info is not None
        if self.done and self.error is None and not self.client_gone:
            self.resp.release()
            b.breaker.on_success()
        else:
            self.resp.close()  # drops the connection, so the engine stops generating
        if self.last_token is not None:  # learning: the ITL since the early report
            b.progress(info, self.content_events, time.monotonic() - (time.perf_counter() - self.last_token))
        b.end(info)
        completion = self.usage.get("completion_tokens") if self.usage else None
        if not isinstance(completion, int):
            completion = self.content_events or None
        prompt = self.usage.get("prompt_tokens") if self.usage else None
        ttft = self.first_token - ex.t0 if self.first_token is not None else None
        m = ex.gw.metrics
        if self.first_token is not None:
            m.ttft.labels(info.model, b.name).observe(ttft or 0.0)
            if (
                completion
                and completion > 1
                and self.last_token is not None
                and self.last_token > self.first_token
            ):
                itl = (self.last_token - self.first_token) / (completion - 1)
                b.itl.observe(itl)
                m.itl.labels(info.model, b.name).observe(itl)
        status = 499 if self.client_gone else 200
        await ex.finish(
            RequestRecord(
                info.model,
                info.endpoint,
                b.name,
                status,
                True,
                prompt if isinstance(prompt, int) else None,
                completion,
                ttft,
                time.perf_counter() - ex.t0,
                self.error,
            )
        )
