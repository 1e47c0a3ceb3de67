"""Streaming OpenAI-compatible client (aiohttp): sends one request, records its timeline.

The hot path reads SSE lines, stamps each with `perf_counter()` before parsing, and parses the
JSON only to see whether the chunk carries content and whether it holds `usage`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Literal

import aiohttp
import orjson

from waveidp.bench.records import RequestRecord

Endpoint = Literal["chat", "completions"]
_STALE_ATTEMPTS = 4


@dataclass(frozen=True)
class Target:
    """Where to send and how: base URL (with or without `/v1`), model name, endpoint kind."""

    url: str
    model: str
    endpoint: Endpoint = "chat"
    api_key: str | None = None
    ignore_eos: bool = True
    timeout_s: float = 600.0

    @property
    def request_url(self) -> str:
        base = self.url.rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        return base + ("/chat/completions" if self.endpoint == "chat" else "/completions")


@dataclass(frozen=True)
class RequestSpec:
    prompt: str
    max_tokens: int
    approx_input_tokens: int


def request_body(target: Target, spec: RequestSpec) -> bytes:
    body: dict[str, Any] = {
        "model": target.model,
        "max_tokens": spec.max_tokens,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if target.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": spec.prompt}]
    else:
        body["prompt"] = spec.prompt
    if target.ignore_eos:
        # vLLM and llama.cpp honour these; they make the output as long as asked.
        body["ignore_eos"] = True
        body["min_tokens"] = spec.max_tokens
    return orjson.dumps(body)


def _error_message(body: bytes) -> str:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace").strip() or "(empty body)"
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        if isinstance(err, str):
            return err[:300]
        if obj.get("detail"):
            return str(obj["detail"])[:300]
    return body[:200].decode("utf-8", "replace")


class StreamingClient:
    """One aiohttp session shared by every request of a run."""

    def __init__(self, target: Target, connections: int) -> None:
        self.target = target
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._url = target.request_url
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if target.api_key:
            self._headers["Authorization"] = f"Bearer {target.api_key}"

    async def __aenter__(self) -> StreamingClient:
        connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=0, ttl_dns_cache=300)
        timeout = aiohttp.ClientTimeout(total=self.target.timeout_s, sock_connect=10)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, spec: RequestSpec, record: RequestRecord) -> None:
        """Send `spec` and fill `record`; never raises except CancelledError (recorded first)."""
        assert self._session is not None
        body = request_body(self.target, spec)
        record.input_tokens = spec.approx_input_tokens
        record.input_token_source = "approx"
        record.sent = perf_counter()
        try:
            for attempt in range(1, _STALE_ATTEMPTS + 1):
                record.attempts = attempt
                try:
                    await self._attempt(body, record)
                    break
                except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                    # A pooled keep-alive connection the server had already closed (llama.cpp's
                    # server does this after a stream) fails before any response byte, so resending
                    # is safe; several pooled connections may be stale at once. The timers still
                    # run from the scheduled time.
                    stale = record.status is None and not isinstance(exc, aiohttp.ClientConnectorError)
                    if attempt == _STALE_ATTEMPTS or not stale:
                        raise
        except asyncio.CancelledError:
            record.error = "cancelled"
            record.error_detail = "cancelled before the response ended"
            raise
        except (TimeoutError, aiohttp.ServerTimeoutError):
            record.error, record.error_detail = (
                "timeout",
                f"no complete response within {self.target.timeout_s:g}s",
            )
        except aiohttp.ClientConnectorError as exc:
            record.error, record.error_detail = "connect", f"cannot connect to {self._url}: {exc.os_error}"
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientOSError) as exc:
            record.error, record.error_detail = "disconnect", f"connection broke mid-response: {exc}"
        except aiohttp.ClientResponseError as exc:
            record.error, record.error_detail = "bad_sse", f"malformed response: {exc.message}"
        except aiohttp.ClientError as exc:
            record.error, record.error_detail = "connect", f"{type(exc).__name__}: {exc}"
        if record.done is None:
            record.done = perf_counter()

    async def _attempt(self, body: bytes, record: RequestRecord) -> None:
        assert self._session is not None
        async with self._session.post(self._url, data=body, headers=self._headers) as resp:
            record.status = resp.status
            if resp.status >= 400:
                record.error = "http"
                record.error_detail = f"HTTP {resp.status}: {_error_message(await resp.read())}"
                record.done = perf_counter()
                return
            await self._read_stream(resp, record)

    async def _read_stream(self, resp: aiohttp.ClientResponse, record: RequestRecord) -> None:
        content_times = record.content_times
        chat = self.target.endpoint == "chat"
        saw_data = False
        async for line in resp.content:
            now = perf_counter()
            if not line.startswith(b"data:"):
                stripped = line.strip()
                if not stripped or stripped.startswith((b":", b"event:", b"id:", b"retry:")):
                    continue
                return self._bad(record, f"line is not SSE: {stripped[:80]!r}", now)
            payload = line[5:].strip()
            if payload == b"[DONE]":
                saw_data = True
                continue
            try:
                obj = orjson.loads(payload)
            except orjson.JSONDecodeError:
                return self._bad(record, f"data is not JSON: {payload[:80]!r}", now)
            if not isinstance(obj, dict):
                return self._bad(record, f"data is not a JSON object: {payload[:80]!r}", now)
            saw_data = True
            if "error" in obj:
                record.error = "server_error"
                record.error_detail = f"error event mid-stream: {_error_message(payload)}"
                record.done = now
                return None
            choices = obj.get("choices")
            if choices:
                choice = choices[0]
                if chat:
                    delta = choice.get("delta") or {}
                    text = delta.get("content") or delta.get("reasoning_content")
                else:
                    text = choice.get("text")
                if text:
                    content_times.append(now)
            usage = obj.get("usage")
            if usage:
                if usage.get("completion_tokens") is not None:
                    record.output_tokens_usage = int(usage["completion_tokens"])
                if usage.get("prompt_tokens") is not None:
                    record.input_tokens = int(usage["prompt_tokens"])
                    record.input_token_source = "usage"
        record.done = perf_counter()
        if not saw_data:
            record.error, record.error_detail = "bad_sse", "response held no SSE data lines"
        elif not content_times:
            record.error, record.error_detail = "empty", "stream ended without any content token"
        return None

    @staticmethod
    def _bad(record: RequestRecord, detail: str, now: float) -> None:
        record.error, record.error_detail, record.done = "bad_sse", detail, now
