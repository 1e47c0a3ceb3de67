"""One request's lifecycle through the gateway, in one type: `Exchange`.

    admission  key authenticated (401; the HTTP server has bounded the head: 431), the key's
               limits taken (`guard.admit`: 429), body read (413) and its JSON shape checked as it
               arrives (400: `transport.JsonShape`), parsed (400), the model's scope checked
               (`guard.check_scope`: 403)
    routing    the model's policy ranks its routable backends (404, 503)
    attempts   down the ranking: each attempt takes a `Work` token from its backend (the in-flight
               bookkeeping routing reads) and makes one call (`upstream.read_answer`, or
               `upstream.open_stream` for a stream: the one step in which they differ); connect
               errors, 5xx, 429 and timeouts move on to the next backend after a jittered backoff,
               only before the client has seen a byte (502, 504 once every one has failed)
    answer     a complete answer (`PlainAnswer`), or a stream the backend has begun, relayed by
               `stream.StreamRelay` until it ends
    finish     exactly once: the record (`RequestRecord`), metrics, guard accounting (the limits'
               slot released, the audit row)

A client that hangs up cancels the upstream request (the connection to the engine is closed, so it
stops generating) and frees the request's slot at once; it is recorded as 499. One watcher per
request notices it: for a stream from the start to the stream's end, for a plain request only once
it has taken WATCH_AFTER_S.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from waveidp.errors import ApiError
from waveidp.gateway.backends import BackendState
from waveidp.gateway.errors import error_json, internal_error, model_not_found, upstream_error
from waveidp.gateway.http_protocol import REFUSE_UNREAD
from waveidp.gateway.record import RequestRecord
from waveidp.gateway.request_ids import CURRENT, accept_request_id
from waveidp.gateway.request_info import (
    ANTHROPIC,
    HOT,
    MULTIPART,
    TRANSLATED,
    Endpoint,
    RequestInfo,
    parse_request,
)
from waveidp.gateway.routing import Ranked
from waveidp.gateway.routing.headroom import deprioritise
from waveidp.gateway.state import Gateway, model_label
from waveidp.gateway.stream import StreamRelay, extract_usage, usage_tokens
from waveidp.gateway.upstream import (
    RETRY_STATUSES,
    UpstreamFailure,
    all_failed,
    all_unsupported,
    backoff,
    failed_status,
    failure,
    open_stream,
    plan_call,
    read_answer,
)
from waveidp.security.audit import bounded_name
from waveidp.security.guard import Admission
from waveidp.security.principal import Principal
from waveidp.security.transport import JsonShape

log = logging.getLogger("waveidp.gateway")
decisions_log = logging.getLogger("waveidp.gateway.routing")  # `--log-level debug`: one line a decision
CLIENT_CLOSED = 499  # nginx's code for "client closed the request"; recorded, never sent
# A plain request starts watching for the client's hang-up only once it has taken this long: the
# watcher is a task per request (~10 % of the gateway's CPU under wrk), and an answer that comes
# sooner has nothing left to cancel.
WATCH_AFTER_S = 0.05

_READ_HEADERS = frozenset(
    {b"authorization", b"x-api-key", b"content-length", b"content-type", b"x-request-id", b"x-session-id"}
)
# An engine answers a route it lacks with 404 (405 where it knows the path for another method).
ROUTE_MISSING = frozenset({404, 405})
# The routes whose answer times teach a backend's TTFT and ITL averages (routing reads them).
TIMED: frozenset[Endpoint] = frozenset({"chat", "completions", "embeddings", "responses", "messages"})


def request_headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The few request headers the hot path reads (the first of each), in one pass; the ASGI server
    gives names in lower case."""
    found: dict[str, str] = {}
    for name, value in raw:
        if name in _READ_HEADERS:
            found.setdefault(name.decode("latin-1"), value.decode("latin-1"))
    return found


async def read_body(
    headers: Mapping[str, str],
    receive: Receive,
    limit: int,
    setting: str = "",
    shape: JsonShape | None = None,
) -> bytes:
    """The whole body, up to `limit` bytes (413 beyond, naming `setting`, where the limit was set),
    each chunk fed to `shape` as it comes (400 at the first one past its limits)."""
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(int(length), limit, setting)
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
            raise _too_large(size, limit, setting)
        if shape is not None:
            shape.feed(chunk)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(size: int, limit: int, setting: str) -> ApiError:
    return ApiError(
        413,
        f"request body of {size} bytes is over the gateway's limit of {limit} bytes"
        + (f" ({setting})" if setting else ""),
        code="body_too_large",
    )


def overloaded(model: str, decision: Ranked) -> ApiError:
    """503 for a request the policy refused (`Ranked.shed_s`): no backend would start it in time."""
    trace = decision.trace()
    why = trace.detail if trace is not None else "no backend would start it in time"
    wait = decision.shed_s or 1.0
    return ApiError(
        503,
        f"model '{model}' is overloaded: {why}; retry after the Retry-After seconds",
        code="overloaded",
        headers={"retry-after": str(max(1, math.ceil(wait)))},
    )


def route(
    gw: Gateway, info: RequestInfo, principal: Principal | None = None
) -> tuple[Ranked, list[BackendState]]:
    """The policy's decision (its ranking of the routable backends serving the model and the
    route, which can explain itself) and the backends to try, in order. 404 for a model no
    backend declares (listing those `principal` may use); 503 with Retry-After while the model is
    known, or may still be (backends not yet asked for their models), but none is up."""
    serving = gw.serving(info.model)
    now = time.monotonic()
    if not serving:
        pending = gw.discovering()
        if pending:
            why = "; ".join(b.status_line(now) for b in pending)
            raise ApiError(
                503,
                f"model '{info.model}' is not known yet: the backends that may serve it have not "
                f"listed their models ({why})",
                code="no_healthy_backend",
                headers={"retry-after": "1"},
            )
        raise model_not_found(info.model, gw.models(principal))
    if info.endpoint not in HOT and info.endpoint not in TRANSLATED:
        serving = _serving_route(serving, info)
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
    if gw.telemetry:
        policy_order = list(ranked)
        ranked[:] = deprioritise(ranked)  # in place: the decision keeps its explanation
        if ranked[0] is not policy_order[0]:
            ranked.demoted(policy_order, policy_order[0].gpu_pressure or "")
    if gw.on_demand and not policy.counts_load_time:
        ranked.sort(key=lambda b: b.ready_in_s(now) > 0)  # a loaded engine before one to load
    if ranked.shed_s is None:
        gw.metrics.child(gw.metrics.decisions, policy.name, ranked[0].name).inc()
    if ranked.reason == "exploration":
        gw.metrics.child(gw.metrics.explorations, info.model, ranked[0].name).inc()
    if decisions_log.isEnabledFor(logging.DEBUG):
        trace = ranked.trace()
        if trace is not None:
            decisions_log.debug("%s", trace.summary())
    if ranked.shed_s is not None:
        return ranked, []
    # With fewer backends than attempts, go round again: a restarted engine leaves stale pooled
    # connections whose first use fails, and the retry then opens a fresh one.
    attempts = gw.config.retries + 1
    return ranked, (ranked * attempts)[:attempts]


def _serving_route(serving: list[BackendState], info: RequestInfo) -> list[BackendState]:
    able = [b for b in serving if b.adapter.serves(info.endpoint)]
    if not able:
        kinds = ", ".join(f"{b.name} ({b.engine})" for b in serving)
        raise ApiError(
            404,
            f"model '{info.model}' is served by {kinds}, and none of them has the "
            f"{info.endpoint} route; see docs/gateway.md (Routes) for which engines serve which",
            code="unsupported_route",
        )
    return able


class UnreadRefusal:
    """A refusal sent before its request's body was read to its end: written by the HTTP server
    with `connection: close`, which reads and drops the rest of the body unparsed before closing
    (`http_protocol.REFUSE_UNREAD`), so that a client still sending sees the answer rather than a
    reset, and the gateway pays neither for reading the body through the application nor for
    checking it. Answered as usual where the body has arrived whole, or under another server."""

    __slots__ = ("answer",)

    def __init__(self, answer: Response) -> None:
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        hook = scope.get(REFUSE_UNREAD)
        refuse_unread = hook() if hook is not None else None
        a = self.answer
        if refuse_unread is None or not refuse_unread(a.status_code, a.raw_headers, a.body):
            await a(scope, receive, send)


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
    """One client request on its way through the gateway, from admission to its one `finish`."""

    __slots__ = (
        "admission",
        "body_read",
        "client",
        "ctype",
        "decision",
        "endpoint",
        "gone",
        "gw",
        "info",
        "principal",
        "raw",
        "receive",
        "relay",
        "request_id",
        "setting",
        "started",
        "t0",
        "task",
        "timer",
        "watcher",
    )

    def __init__(self, gw: Gateway, endpoint: Endpoint, receive: Receive) -> None:
        self.gw = gw
        self.endpoint = endpoint
        self.receive = receive
        self.request_id = ""
        self.client: str | None = None  # the client's address, for the refusals' audit budget
        self.ctype: str | None = None  # the body's content type, where it is not JSON (multipart)
        self.t0 = time.perf_counter()
        self.started = time.monotonic()
        self.principal: Principal | None = None
        self.info: RequestInfo | None = None
        self.raw = b""
        self.body_read = False
        self.admission: Admission | None = None
        self.decision: Ranked | None = None  # the router's ranking; its trace is built when read
        self.relay: StreamRelay | None = None  # the stream being relayed, once one is committed
        self.task: asyncio.Task[Any] | None = None  # the task serving the request
        self.gone = False  # the client hung up
        self.timer: asyncio.TimerHandle | None = None
        self.watcher: asyncio.Future[None] | None = None

    @property
    def extra_headers(self) -> dict[str, str]:
        """Headers every answer carries: the request id (as `request-id` too on Anthropic's routes,
        where its SDK reads that), and what the guard wants (`x-ratelimit-*`)."""
        headers = {"x-request-id": self.request_id}
        if self.endpoint in ANTHROPIC:
            headers["request-id"] = self.request_id
        if self.admission is not None:
            headers.update(self.admission.headers)
        return headers

    def refuse(self, err: ApiError) -> Response:
        """The error's answer, in the shape of the client's API."""
        body = err.json() if self.endpoint in HOT else error_json(self.endpoint, err, self.request_id)
        return err.response(self.extra_headers, body=body)

    async def run(self, scope: Scope) -> ASGIApp:
        """Admission, routing and the attempts; the responder that sends the answer. Whatever goes
        wrong is answered in OpenAI's error shape, and finished."""
        gw = self.gw
        try:
            peer = scope.get("client")
            self.client = peer[0] if peer else None
            headers = request_headers(scope["headers"])
            self.request_id = accept_request_id(headers.get("x-request-id"))
            CURRENT.set(self.request_id)
            self.principal = principal = await gw.guard.authenticate(headers)
            # The cheap checks first: the key's limits (429) before a byte of the body is read, so
            # that a limited key pays for every request, also one refused below; its scope (403)
            # once the body has named the model.
            self.admission = await gw.guard.admit(
                principal, None, endpoint=self.endpoint, request_id=self.request_id
            )
            multipart = self.endpoint in MULTIPART
            # a JSON body's shape is checked as it arrives: one over the limits is refused at its
            # first chunk past them, neither read to its end nor parsed (which costs per container)
            shape = None if multipart else JsonShape(gw.input_limits)
            self.raw = await read_body(
                headers, self.receive, gw.config.max_body_bytes, gw.body_limit_setting, shape
            )
            self.body_read = True
            if multipart:
                self.ctype = headers.get("content-type")
            self.info = info = parse_request(self.endpoint, self.raw, headers.get("x-session-id"), self.ctype)
            if not info.model:
                info.model = gw.only_model(principal)
            gw.guard.check_scope(self.admission, info.model)
            self.decision, attempts = route(gw, info, self.principal)
            if self.decision.shed_s is not None:  # the record keeps the decision that refused it
                raise overloaded(info.model, self.decision)
            return await self._attempts(attempts)
        except ApiError as err:
            await self.finish(status=err.status, error=err.code, refusal=err)
            if not self.body_read and err.status != CLIENT_CLOSED:
                return UnreadRefusal(self.refuse(err))
            return self.refuse(err)
        except Exception as exc:  # a bug must still answer in the API's error shape, and free the slot
            log.exception("unhandled error on %s", scope["path"])
            crash = internal_error(exc)
            await self.finish(status=crash.status, error=crash.code, refusal=crash)
            return self.refuse(crash)

    async def _attempts(self, ranked: list[BackendState]) -> ASGIApp:
        """Down the ranking until a backend answers or begins a stream."""
        gw, info = self.gw, self.info
        assert info is not None
        stream = info.stream
        call = open_stream if stream else read_answer
        self.task = asyncio.current_task()
        if stream:
            self._watch()
        else:
            self.timer = asyncio.get_running_loop().call_later(WATCH_AFTER_S, self._watch)
        failures: list[UpstreamFailure] = []
        unsupported: list[UpstreamFailure] = []  # backends that answered 501 (not supported)
        again = False  # this attempt repeats the last one's backend, translated
        try:
            # The list may grow while it is walked: a backend that lacks a translated route is
            # tried again at once, translated (`_lacks_route`).
            for attempt, b in enumerate(ranked):
                if attempt and not again:
                    await backoff(gw, attempt, info.model)
                again = False
                if unsupported and any(u.backend is b for u in unsupported):
                    continue
                residency = b.residency
                if residency is not None:
                    residency.last_used = time.monotonic()
                    if not residency.loaded:
                        await residency.wait_loaded(info.model, b.name, self.started)
                endpoint, body, injected, translation = plan_call(info, self.raw, b)
                b.breaker.on_attempt()
                work = b.begin(info)
                sent = time.perf_counter()
                try:
                    resp, data = await call(gw, b, endpoint, body, self.request_id, self.ctype)
                    arrived = time.perf_counter()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    b.end(work)
                    failures.append(failure(b, exc))
                    continue
                except BaseException:
                    b.end(work)
                    raise
                status = resp.status
                if stream and status == 200:
                    self.relay = StreamRelay(
                        gw.config,
                        b,
                        work,
                        resp,
                        data,
                        sent,
                        injected,
                        info.endpoint,
                        endpoint,
                        translation,
                        arrived,
                    )
                    return self._relay  # `work` ends, and the watcher stops, when the stream does
                b.end(work)
                if status in RETRY_STATUSES:
                    failures.append(failed_status(b, status, data))
                    continue
                b.breaker.on_success()
                if translation is None and status in ROUTE_MISSING and info.endpoint in TRANSLATED:
                    b.lacks.add(info.endpoint)
                    log.warning(
                        "%s answered %s with HTTP %d: translating to chat completions",
                        b.name,
                        endpoint,
                        status,
                    )
                    ranked.insert(attempt + 1, b)
                    again = True
                    continue
                if status == 501:
                    unsupported.append(UpstreamFailure(b, upstream_error(data, status).message))
                    continue
                prompt_tokens = completion_tokens = None
                if status == 200:
                    prompt_tokens, completion_tokens = _tokens(extract_usage(data))
                    elapsed = time.perf_counter() - sent
                    _observe_plain(b, info, elapsed, completion_tokens)
                    b.answered(work, elapsed, completion_tokens or 0)  # the router learns
                    if translation is not None:
                        data = translation.answer(data)
                await self.finish(
                    status=status,
                    backend=b.name,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                )
                if status >= 400:
                    err = upstream_error(data, status)
                    data, ctype = error_json(info.endpoint, err, self.request_id), "application/json"
                else:
                    ctype = resp.headers.get("content-type", "application/json")
                return PlainAnswer(data, status, ctype.encode("latin-1"), b.name.encode(), self.extra_headers)
            if unsupported and not failures:
                raise all_unsupported(info, unsupported)
            raise all_failed(info, failures + unsupported)
        except asyncio.CancelledError:
            if not self.gone:
                raise
            self.task.uncancel()  # type: ignore[union-attr]
            await self.finish(status=CLIENT_CLOSED, error="client_disconnected")
            return Response(b"", CLIENT_CLOSED)
        finally:
            if self.relay is None:
                self._unwatch()

    async def _relay(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The responder of a committed stream."""
        relay = self.relay
        assert relay is not None
        try:
            await relay.pump(send, self.extra_headers)
        except asyncio.CancelledError:
            if not self.gone:
                raise
            self.task.uncancel()  # type: ignore[union-attr]
        finally:
            self._unwatch()
            await self._stream_ended(relay)

    async def _stream_ended(self, relay: StreamRelay) -> None:
        b, info, m = relay.b, self.info, self.gw.metrics
        assert info is not None
        if relay.error is not None:
            b.breaker.on_failure(time.monotonic())
            m.stream_errors.labels(info.model, b.name).inc()
            log.warning("stream of %s failed after the first byte: %s", b.name, relay.error)
        if relay.done and relay.error is None and not self.gone:
            relay.resp.release()
            b.breaker.on_success()
        else:
            relay.resp.close()  # drops the connection, so the engine stops generating
        if relay.last_token is not None:  # the router learns the ITL since the early report
            last = time.monotonic() - (time.perf_counter() - relay.last_token)
            b.progress(relay.work, relay.content_events, last)
        b.end(relay.work)
        prompt, completion = relay.tokens()
        ttft = relay.first_token - self.t0 if relay.first_token is not None else None
        if ttft is not None:
            m.ttft.labels(info.model, b.name).observe(ttft)
            itl = relay.itl_s(completion)
            if itl is not None:
                b.itl.observe(itl)
                m.itl.labels(info.model, b.name).observe(itl)
        await self.finish(
            status=CLIENT_CLOSED if self.gone else 200,
            backend=b.name,
            prompt_tokens=prompt,
            completion_tokens=completion,
            ttft_s=ttft,
            error=relay.error,
        )

    def _watch(self) -> None:
        self.watcher = asyncio.ensure_future(self._cancel_on_disconnect())

    async def _cancel_on_disconnect(self) -> None:
        """Cancel the request's task when the client goes away, so the upstream request is dropped."""
        receive = self.receive
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self.gone = True
                self.task.cancel()  # type: ignore[union-attr]
                return

    def _unwatch(self) -> None:
        # Dropped, not only cancelled: a cancelled task keeps its CancelledError, whose traceback
        # holds the watcher's frame and so this exchange, a cycle left to the garbage collector.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.watcher is not None:
            self.watcher.cancel()
            self.watcher = None

    async def finish(
        self,
        *,
        status: int,
        backend: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        ttft_s: float | None = None,
        error: str | None = None,
        refusal: ApiError | None = None,
    ) -> None:
        """Record the request once it is answered: metrics, and the guard's accounting (the admission
        finished, or the refusal counted and audited by `Gateway.refused`)."""
        info = self.info
        record = RequestRecord(
            request_id=self.request_id,
            model=bounded_name(info.model) if info is not None else "",  # a client's string
            endpoint=self.endpoint,
            backend=backend,
            status=status,
            stream=info.stream if info is not None else False,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            ttft_s=ttft_s,
            duration_s=time.perf_counter() - self.t0,
            error=error,
            decision=self.decision,
        )
        m = self.gw.metrics
        label = model_label(self.gw, record.model, backend)
        if self.gw.recent is not None:
            self.gw.recent.add(record, self.principal.name if self.principal else "-", self.request_id)
        if self.admission is None and refusal is not None:
            try:
                self.gw.refused(  # counted and audited where every refusal is
                    refusal,
                    client=self.client,
                    principal=self.principal,
                    endpoint=self.endpoint,
                    model=record.model,
                    request_id=self.request_id,
                    started=self.started,
                )
            except Exception:  # accounting must not break an answer that is already on its way
                log.exception("refusal accounting failed")
            return
        m.child(m.requests, label, backend or "", str(status)).inc()
        if backend:
            m.child(m.duration, label, backend).observe(record.duration_s)
        if prompt_tokens:
            m.child(m.tokens, label, "input").inc(prompt_tokens)
        if completion_tokens:
            m.child(m.tokens, label, "output").inc(completion_tokens)
        guard = self.gw.guard
        try:
            if self.admission is not None:
                await guard.finish(
                    self.admission,
                    status=status,
                    backend=backend,
                    tokens_in=prompt_tokens,
                    tokens_out=completion_tokens,
                )
        except Exception:  # accounting must not break an answer that is already on its way
            log.exception("guard accounting failed")


async def handle(gw: Gateway, endpoint: Endpoint, scope: Scope, receive: Receive) -> ASGIApp:
    """The ASGI responder for one POST to an OpenAI endpoint (called without Starlette's routing)."""
    return await Exchange(gw, endpoint, receive).run(scope)


def _observe_plain(b: BackendState, info: RequestInfo, elapsed: float, completion_tokens: int | None) -> None:
    if info.endpoint not in TIMED:
        return
    if not completion_tokens:
        b.ttft.observe(elapsed)
        return
    prefill = b.ttft.value or 0.0
    b.itl.observe(max(0.0, elapsed - prefill) / completion_tokens)


def _tokens(usage: dict[str, Any] | None) -> tuple[int | None, int | None]:
    if not usage:
        return None, None
    return usage_tokens(usage)
