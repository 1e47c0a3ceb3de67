"""The hot path: authenticate, parse once, route, forward the bytes, account.

Failover happens only before the client has seen a byte: connect errors, 5xx, 429 and timeouts
move the request down the policy's ranking (with jittered backoff). Once a stream has started,
a failure ends it with an SSE error event and `[DONE]` (see `stream.py`); answers of two
backends are never spliced.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from waveidp.errors import WaveError
from waveidp.gateway.backends import BackendState
from waveidp.gateway.errors import ApiError, as_api_error, upstream_error_body
from waveidp.gateway.record import RequestRecord
from waveidp.gateway.request_info import PATHS, Endpoint, RequestInfo, parse_request
from waveidp.gateway.routing import Ranked
from waveidp.gateway.state import Gateway
from waveidp.gateway.stream import StreamRelay, extract_usage
from waveidp.security.principal import Principal
from waveidp.security.transport import check_headers

log = logging.getLogger("waveidp.gateway")
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.02
BACKOFF_MAX_S = 0.5
CLIENT_CLOSED = 499  # nginx's code for "client closed the request"; recorded, never sent
# A plain request starts watching for the client's hang-up only once it has taken this long: the
# watcher is a task per request (~10 % of the gateway's CPU under wrk), and an answer that comes
# sooner has nothing left to cancel.
WATCH_AFTER_S = 0.05


class UpstreamFailure(Exception):
    def __init__(self, backend: BackendState, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.backend = backend
        self.reason = reason
        self.timeout = timeout


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int) -> bytes:
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(int(length), limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(
                CLIENT_CLOSED, "client closed the connection while sending", code="client_disconnected"
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int) -> ApiError:
    return ApiError(
        413,
        f"request body of {size} bytes is over the gateway's limit of {limit} bytes "
        "(gateway.max_body_bytes in wave.yaml)",
        code="body_too_large",
    )


def upstream_headers(b: BackendState) -> dict[str, str] | None:
    """What a request to `b` carries beyond the session's headers (`state.UPSTREAM_HEADERS`)."""
    return {"authorization": f"Bearer {b.api_key}"} if b.api_key else None


_TARGETS: dict[tuple[str, str | None, Endpoint], tuple[URL, dict[str, str] | None]] = {}


def upstream_target(b: BackendState, endpoint: Endpoint) -> tuple[URL, dict[str, str] | None]:
    """The parsed URL and the extra headers for `endpoint` on `b`, built once (yarl parses a str URL
    on every request)."""
    key = (b.root, b.api_key, endpoint)
    found = _TARGETS.get(key)
    if found is None:
        found = _TARGETS[key] = (URL(b.root + PATHS[endpoint]), upstream_headers(b))
    return found


class PlainAnswer:
    """A complete answer as two ASGI messages with a header list built here (Starlette's `Response`
    rebuilds, lowercases and re-encodes its headers on every request)."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, body: bytes, status: int, ctype: bytes, backend: bytes, extra: dict[str, str]) -> None:
        self.body = body
        self.status = status
        headers = [(b"content-type", ctype), (b"x-wave-backend", backend)]
        if not (status < 200 or status in (204, 304)):
            headers.append((b"content-length", str(len(body)).encode()))
        for k, v in extra.items():
            headers.append((k.lower().encode("latin-1"), v.encode("latin-1")))
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


class Exchange:
    """One client request on its way through the gateway."""

    __slots__ = (
        "admission",
        "decision",
        "endpoint",
        "gw",
        "info",
        "principal",
        "raw",
        "request_id",
        "started",
        "t0",
    )

    def __init__(self, gw: Gateway, endpoint: Endpoint, request_id: str | None) -> None:
        self.gw = gw
        self.endpoint = endpoint
        self.t0 = time.perf_counter()
        self.started = time.monotonic()
        self.request_id = request_id
        self.principal: Principal | None = None
        self.info: RequestInfo | None = None
        self.raw = b""
        self.admission: Any = None
        self.decision: Ranked | None = None  # the routing decision (its trace is built on demand)

    @property
    def extra_headers(self) -> dict[str, str]:
        """Headers the guard wants on the answer (`x-ratelimit-*`)."""
        return dict(self.admission.headers) if self.admission is not None else {}

    async def finish(self, record: RequestRecord, refusal: ApiError | None = None) -> None:
        record.decision = self.decision
        m = self.gw.metrics
        m.child(m.requests, record.model, record.backend or "", str(record.status)).inc()
        if record.backend:
            m.child(m.duration, record.model, record.backend).observe(record.duration_s)
        if record.prompt_tokens:
            m.child(m.tokens, record.model, "input").inc(record.prompt_tokens)
        if record.completion_tokens:
            m.child(m.tokens, record.model, "output").inc(record.completion_tokens)
        guard = self.gw.guard
        try:
            if self.admission is not None:
                await guard.finish(
                    self.admission,
                    status=record.status,
                    backend=record.backend,
                    tokens_in=record.prompt_tokens,
                    tokens_out=record.completion_tokens,
                )
            elif refusal is not None:
                guard.refused(
                    refusal,
                    principal=self.principal,
                    endpoint=self.endpoint,
                    model=record.model or None,
                    request_id=self.request_id,
                    started=self.started,
                )
        except Exception:  # accounting must not break an answer that is already on its way
            log.exception("guard accounting failed")


_READ_HEADERS = frozenset(
    {b"authorization", b"x-api-key", b"content-length", b"x-request-id", b"x-session-id"}
)


def request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The few request headers the hot path reads (the first of each), in one pass; the ASGI server
    gives names in lower case."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in _READ_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


async def handle(gw: Gateway, endpoint: Endpoint, scope: Scope, receive: Receive) -> ASGIApp:
    """The ASGI responder for one POST to an OpenAI endpoint (called without Starlette's routing)."""
    headers = request_headers(scope["headers"])
    ex = Exchange(gw, endpoint, headers.get("x-request-id"))
    try:
        try:
            check_headers(scope["headers"], gw.input_limits)
            ex.principal = await gw.guard.authenticate(headers)
            ex.raw = await read_body(headers, receive, gw.config.max_body_bytes)
            ex.info = info = parse_request(
                endpoint, ex.raw, headers.get("x-session-id"), gw.input_limits.max_json_depth
            )
            ex.admission = await gw.guard.admit(
                ex.principal, info.model, endpoint=endpoint, request_id=ex.request_id
            )
            ex.decision, ranked = route(gw, info)
            if info.stream:
                return await open_stream(ex, ranked, receive)
            return await forward_plain(ex, ranked, receive)
        except WaveError as exc:
            raise as_api_error(exc) from None
    except ApiError as err:
        model = ex.info.model if ex.info else ""
        record = RequestRecord(
            model,
            endpoint,
            None,
            err.status,
            bool(ex.info and ex.info.stream),
            None,
            None,
            None,
            time.perf_counter() - ex.t0,
            err.code,
        )
        await ex.finish(record, err)
        return error_response(err, ex.extra_headers)


def error_response(err: ApiError, extra: dict[str, str] | None = None) -> Response:
    headers = {**extra, **err.headers} if extra else err.headers
    return Response(orjson.dumps(err.body()), err.status, headers=headers, media_type="application/json")


def route(gw: Gateway, info: RequestInfo) -> tuple[Ranked, list[BackendState]]:
    """The policy's decision, and the backends to try in order."""
    serving = gw.serving(info.model)
    if not serving:
        available = ", ".join(gw.models()) or "none (no backend is up yet)"
        raise ApiError(
            404,
            f"model '{info.model}' is not served here; available models: {available}",
            code="model_not_found",
            param="model",
        )
    now = time.monotonic()
    routable = [b for b in serving if b.routable(now)]
    if not routable:
        why = "; ".join(b.status_line(now) for b in serving)
        raise ApiError(
            503,
            f"no healthy backend for model '{info.model}': {why}",
            code="no_healthy_backend",
            headers={"retry-after": "1"},
        )
    policy = gw.policy(info.model)
    ranked = policy.rank(routable, info, now)
    gw.metrics.child(gw.metrics.decisions, policy.name, ranked[0].name).inc()
    if ranked.reason == "exploration":
        gw.metrics.child(gw.metrics.explorations, info.model, ranked[0].name).inc()
    # With fewer backends than attempts, go round again: a restarted engine leaves stale pooled
    # connections whose first use fails, and the retry then opens a fresh one.
    attempts = gw.config.retries + 1
    return ranked, (ranked * attempts)[:attempts]


def body_for(info: RequestInfo, raw: bytes, b: BackendState) -> tuple[bytes, bool]:
    """The bytes to send `b`, and whether the gateway added `stream_options` itself."""
    if info.stream and b.adapter.stream_usage and "stream_options" not in info.body:
        return info.with_stream_usage(), True
    return raw, False


async def _backoff(gw: Gateway, attempt: int, model: str) -> None:
    gw.metrics.retries.labels(model).inc()
    await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)))


def _failure(b: BackendState, exc: BaseException) -> UpstreamFailure:
    now = time.monotonic()
    if isinstance(exc, aiohttp.ClientConnectorError):
        reason = f"cannot connect ({exc.os_error.strerror or exc.os_error})"
        b.mark_down(reason)
        b.breaker.on_failure(now, fatal=True)
        return UpstreamFailure(b, reason)
    b.breaker.on_failure(now)
    if isinstance(exc, TimeoutError):
        return UpstreamFailure(b, "timed out", timeout=True)
    return UpstreamFailure(b, f"{type(exc).__name__}: {exc}")


def _retryable_status(b: BackendState, status: int) -> None:
    if status == 503:  # loading or draining: out of rotation until its health check passes
        b.mark_down("answered HTTP 503 (loading or overloaded)")
    if status >= 500:
        b.breaker.on_failure(time.monotonic())


def _all_failed(info: RequestInfo, failures: list[UpstreamFailure]) -> ApiError:
    detail = "; ".join(f"{f.backend.name}: {f.reason}" for f in failures)
    if failures and all(f.timeout for f in failures):
        return ApiError(
            504, f"every backend tried for '{info.model}' timed out: {detail}", code="upstream_timeout"
        )
    return ApiError(502, f"every backend tried for '{info.model}' failed: {detail}", code="upstream_error")


async def forward_plain(ex: Exchange, ranked: list[BackendState], receive: Receive) -> ASGIApp:
    gw, info = ex.gw, ex.info
    assert info is not None
    failures: list[UpstreamFailure] = []
    task = asyncio.current_task()
    assert task is not None
    gone: list[bool] = []
    watchers: list[asyncio.Future[None]] = []

    def watch() -> None:
        watchers.append(asyncio.ensure_future(_cancel_on_disconnect(receive, task, gone)))

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, watch)
    try:
        for attempt, b in enumerate(ranked):
            if attempt:
                await _backoff(gw, attempt, info.model)
            body, _ = body_for(info, ex.raw, b)
            b.breaker.on_attempt()
            b.begin(info)
            sent = time.perf_counter()
            url, headers = upstream_target(b, info.endpoint)
            try:
                async with await gw.send(
                    b, "POST", url, data=body, headers=headers, timeout=gw.plain_timeout
                ) as resp:
                    data = await resp.read()
                    status = resp.status
                    ctype = resp.headers.get("content-type", "application/json")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(_failure(b, exc))
                continue
            finally:
                work = b.end(info)
            if status in RETRY_STATUSES:
                _retryable_status(b, status)
                failures.append(
                    UpstreamFailure(
                        b, f"HTTP {status}: {data[:200].decode(errors='replace')}", timeout=status == 504
                    )
                )
                continue
            b.breaker.on_success()
            elapsed = time.perf_counter() - sent
            usage = extract_usage(data) if status == 200 else None
            prompt_tokens, completion_tokens = _tokens(usage)
            if status == 200:
                _observe_plain(b, info, elapsed, completion_tokens)
                b.answered(work, elapsed, completion_tokens or 0)  # learning
            await ex.finish(
                RequestRecord(
                    info.model,
                    info.endpoint,
                    b.name,
                    status,
                    False,
                    prompt_tokens,
                    completion_tokens,
                    None,
                    time.perf_counter() - ex.t0,
                )
            )
            if status >= 400:
                data, ctype = upstream_error_body(data, status), "application/json"
            extra = ex.admission.headers if ex.admission is not None else {}
            return PlainAnswer(data, status, ctype.encode("latin-1"), b.name.encode(), extra)
        raise _all_failed(info, failures)
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        return await _client_gone(ex, stream=False)
    finally:
        timer.cancel()
        if watchers:
            watchers[0].cancel()


async def _client_gone(ex: Exchange, *, stream: bool) -> Response:
    """Account a request whose client hung up before its answer began (frees its concurrency slot)."""
    info = ex.info
    assert info is not None
    await ex.finish(
        RequestRecord(
            info.model,
            info.endpoint,
            None,
            CLIENT_CLOSED,
            stream,
            None,
            None,
            None,
            time.perf_counter() - ex.t0,
            "client_disconnected",
        )
    )
    return Response(b"", CLIENT_CLOSED)


def _observe_plain(b: BackendState, info: RequestInfo, elapsed: float, completion_tokens: int | None) -> None:
    if info.endpoint == "embeddings" or not completion_tokens:
        b.ttft.observe(elapsed)
        return
    prefill = b.ttft.value or 0.0
    b.itl.observe(max(0.0, elapsed - prefill) / completion_tokens)


def _tokens(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    if not usage:
        return None, None
    p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
    return (p if isinstance(p, int) else None), (c if isinstance(c, int) else None)


async def _cancel_on_disconnect(receive: Receive, task: asyncio.Task[Any], gone: list[bool]) -> None:
    """Cancel the request's task when the client goes away, so the upstream request is dropped."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.append(True)
            task.cancel()
            return


async def open_stream(ex: Exchange, ranked: list[BackendState], receive: Receive) -> StreamRelay | Response:
    """Find a backend that produces a first chunk; only then commit to the client.

    A client that hangs up while the engine prefills cancels the upstream request at once and
    gives its concurrency slot back, instead of holding both until the first token."""
    task = asyncio.current_task()
    assert task is not None
    gone: list[bool] = []
    watcher = asyncio.ensure_future(_cancel_on_disconnect(receive, task, gone))
    try:
        result = await _first_chunk(ex, ranked)
    except asyncio.CancelledError:
        if not gone:
            raise
        task.uncancel()
        return await _client_gone(ex, stream=True)
    finally:
        watcher.cancel()
    if gone and isinstance(result, StreamRelay):
        # The hang-up came with the first chunk: the cancellation lands in the relay, which then
        # knows it as the client's and ends quietly.
        result.client_gone = True
    return result


# The same retry loop as forward_plain's, kept apart: one shared attempt helper measured no faster and
# possibly slower under wrk (8 alternated runs, rps ratios 0.88-1.17, chunks/s 0.87-1.69: noise).
async def _first_chunk(ex: Exchange, ranked: list[BackendState]) -> StreamRelay | Response:
    gw, info = ex.gw, ex.info
    assert info is not None
    failures: list[UpstreamFailure] = []
    for attempt, b in enumerate(ranked):
        if attempt:
            await _backoff(gw, attempt, info.model)
        body, injected = body_for(info, ex.raw, b)
        b.breaker.on_attempt()
        b.begin(info)
        sent = time.perf_counter()
        try:
            resp, first = await _open_one(gw, b, info, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            b.end(info)
            failures.append(_failure(b, exc))
            continue
        except BaseException:
            b.end(info)
            raise
        if resp.status == 200:
            return StreamRelay(ex, b, resp, first, sent, injected)
        b.end(info)
        if resp.status in RETRY_STATUSES:
            _retryable_status(b, resp.status)
            failures.append(UpstreamFailure(b, f"HTTP {resp.status}: {first[:200].decode(errors='replace')}"))
            continue
        b.breaker.on_success()
        await ex.finish(
            RequestRecord(
                info.model,
                info.endpoint,
                b.name,
                resp.status,
                True,
                None,
                None,
                None,
                time.perf_counter() - ex.t0,
            )
        )
        return Response(
            upstream_error_body(first, resp.status) if resp.status >= 400 else first,
            resp.status,
            headers={"x-wave-backend": b.name},
            media_type="application/json" if resp.status >= 400 else resp.headers.get("content-type"),
        )
    raise _all_failed(info, failures)


async def _open_one(
    gw: Gateway, b: BackendState, info: RequestInfo, body: bytes
) -> tuple[aiohttp.ClientResponse, bytes]:
    """POST and wait for the first chunk (200) or the whole error body (other statuses)."""
    resp: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(gw.config.first_token_timeout_s):
            url, headers = upstream_target(b, info.endpoint)
            resp = await gw.send(b, "POST", url, data=body, headers=headers, timeout=gw.stream_timeout)
            if resp.status != 200:
                data = await resp.read()
                resp.release()
                return resp, data
            first = await resp.content.readany()
            if not first:
                raise aiohttp.ServerDisconnectedError("closed the stream before the first byte")
            return resp, first
    except BaseException:
        if resp is not None:
            resp.close()
        raise


async def models_list(gw: Gateway) -> Response:
    data = [
        {
            "id": m,
            "object": "model",
            "created": 0,
            "owned_by": "wave",
            "backends": [b.name for b in gw.serving(m)],
        }
        for m in gw.models()
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")
