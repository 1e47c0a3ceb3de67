"""One attempt's call to one backend, and what its failure means.

An attempt is one of two calls, the one step in which a plain request and a stream differ:
`read_answer` POSTs and reads the whole answer; `open_stream` POSTs and waits for the first chunk
(or the whole error answer). Both raise `aiohttp.ClientError` or `TimeoutError` when the backend
fails; `failure` says what that means for the backend (out of rotation, a breaker failure) and
for the request (retried elsewhere, a 502 or 504 once every attempt has failed).
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp
from yarl import URL

from waveidp.errors import ApiError
from waveidp.gateway.backends import BackendState
from waveidp.gateway.request_info import HOT, PATHS, TRANSLATED, Endpoint, RequestInfo
from waveidp.gateway.state import Gateway
from waveidp.gateway.translation import Translation

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
BACKOFF_BASE_S = 0.02
BACKOFF_MAX_S = 0.5


class UpstreamFailure(Exception):
    def __init__(self, backend: BackendState, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.backend = backend
        self.reason = reason
        self.timeout = timeout


def upstream_headers(b: BackendState) -> dict[str, str]:
    """What a request to `b` carries beyond the session's headers (`state.UPSTREAM_HEADERS`) and
    the request's own (its id, its content type)."""
    return {"authorization": f"Bearer {b.api_key}"} if b.api_key else {}


_TARGETS: dict[tuple[str, str | None, Endpoint], tuple[URL, dict[str, str]]] = {}


def upstream_target(b: BackendState, endpoint: Endpoint) -> tuple[URL, dict[str, str]]:
    """The parsed URL and the extra headers for `endpoint` on `b`, built once (yarl parses a str URL
    on every request)."""
    key = (b.root, b.api_key, endpoint)
    found = _TARGETS.get(key)
    if found is None:
        found = _TARGETS[key] = (URL(b.root + PATHS[endpoint]), upstream_headers(b))
    return found


def plan_call(
    info: RequestInfo, raw: bytes, b: BackendState
) -> tuple[Endpoint, bytes, bool, Translation | None]:
    """What to send `b` for `info`: the endpoint called, the body, whether the gateway added
    `stream_options` itself, and the translation when `b` lacks the request's route."""
    endpoint = info.endpoint
    if endpoint in HOT:
        if info.stream and b.adapter.stream_usage and "stream_options" not in info.body:
            return endpoint, info.with_stream_usage(), True, None
        return endpoint, raw, False, None
    if endpoint in TRANSLATED and (endpoint in b.lacks or not b.adapter.serves(endpoint)):
        translation = Translation(endpoint, info.body)
        return "chat", translation.body(b.adapter.stream_usage), False, translation
    return endpoint, raw, False, None


async def read_answer(
    gw: Gateway, b: BackendState, endpoint: Endpoint, body: bytes, request_id: str, ctype: str | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    """POST and read the whole answer (the connection goes back to the pool)."""
    url, extra = upstream_target(b, endpoint)
    headers = {**extra, "x-request-id": request_id}
    if ctype is not None:
        headers["content-type"] = ctype
    async with await gw.send(b, "POST", url, data=body, headers=headers, timeout=gw.plain_timeout) as resp:
        return resp, await resp.read()


async def open_stream(
    gw: Gateway, b: BackendState, endpoint: Endpoint, body: bytes, request_id: str, ctype: str | None = None
) -> tuple[aiohttp.ClientResponse, bytes]:
    """POST and wait for the first chunk (200: the response stays open for the relay) or the whole
    error body (other statuses)."""
    resp: aiohttp.ClientResponse | None = None
    try:
        async with asyncio.timeout(gw.config.first_token_timeout_s):
            url, extra = upstream_target(b, endpoint)
            headers = {**extra, "x-request-id": request_id}
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


async def backoff(gw: Gateway, attempt: int, model: str) -> None:
    gw.metrics.retries.labels(model).inc()
    await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)))


def failure(b: BackendState, exc: BaseException) -> UpstreamFailure:
    """A call that raised: refused connections take `b` out of rotation at once."""
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


def failed_status(b: BackendState, status: int, data: bytes) -> UpstreamFailure:
    """An answer with a status in RETRY_STATUSES: a 503 (loading, draining) takes `b` out of rotation
    until its health check passes; 5xx count against its breaker."""
    if status == 503:
        b.mark_down("answered HTTP 503 (loading or overloaded)")
    if status >= 500:
        b.breaker.on_failure(time.monotonic())
    return UpstreamFailure(b, f"HTTP {status}: {data[:200].decode(errors='replace')}", timeout=status == 504)


def all_unsupported(info: RequestInfo, answers: list[UpstreamFailure]) -> ApiError:
    """Every backend tried answered 501: the model cannot do what was asked (a route its engine has
    but this model or start-up does not serve). A 4xx: resending it cannot help."""
    detail = "; ".join(f"{f.backend.name}: {f.reason}" for f in answers)
    return ApiError(
        400, f"'{info.model}' cannot serve this request here: {detail}", code="unsupported_by_backend"
    )


def all_failed(info: RequestInfo, failures: list[UpstreamFailure]) -> ApiError:
    detail = "; ".join(f"{f.backend.name}: {f.reason}" for f in failures)
    if failures and all(f.timeout for f in failures):
        return ApiError(
            504, f"every backend tried for '{info.model}' timed out: {detail}", code="upstream_timeout"
        )
    return ApiError(502, f"every backend tried for '{info.model}' failed: {detail}", code="upstream_error")
