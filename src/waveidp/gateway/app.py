"""The ASGI application: the OpenAI and Anthropic routes, liveness/readiness, metrics, and the
background health loop.

app = create_app(Gateway(backends, security.guard))   # see waveidp.security.gateway_security

Every answer carries `x-request-id` (the client's, or a new one): the model routes set it in their
`Exchange`, the others on the way out (`_with_request_id`). CORS, when `gateway.cors_origins` is
set, wraps the whole app (Starlette's `CORSMiddleware`); off by default, so it costs nothing then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from waveidp.errors import ApiError
from waveidp.gateway.errors import internal_error
from waveidp.gateway.exchange import handle
from waveidp.gateway.health import health_loop, probe_all, telemetry_loop
from waveidp.gateway.model_list import model_list, one_model
from waveidp.gateway.openapi import OPENAPI
from waveidp.gateway.request_ids import CURRENT, accept_request_id
from waveidp.gateway.request_info import ROUTES, Endpoint
from waveidp.gateway.state import Gateway
from waveidp.gateway.stored_responses import forward_stored
from waveidp.protocols import anthropic
from waveidp.security.secrets import redact_urls

_JSON = "application/json"


class OpenAIEndpoint:
    """The ASGI app of one OpenAI POST endpoint."""

    def __init__(self, gw: Gateway, endpoint: Endpoint) -> None:
        self.gw = gw
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        responder = await handle(self.gw, self.endpoint, scope, receive)
        await responder(scope, receive, send)


class GatewayApp(Starlette):
    """Starlette for everything but the model POST routes, which skip its middleware and routing:
    measured under wrk, that stack halved the requests/s the gateway passes through."""

    hot: dict[str, OpenAIEndpoint]
    gateway: Gateway
    cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.cors is not None:
            await self.cors(scope, receive, send)
        else:
            await self.dispatch(scope, receive, send)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["method"] == "POST":
                endpoint = self.hot.get(scope["path"])
                if endpoint is not None:
                    await endpoint(scope, receive, send)
                    return
            send = _with_request_id(scope, send)
        await super().__call__(scope, receive, send)


def _with_request_id(scope: Scope, send: Send) -> Send:
    """`send` that puts the request's id (the client's, or a new one) on the answer."""
    sent = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
    rid = accept_request_id(sent)
    CURRENT.set(rid)
    header = (b"x-request-id", rid.encode("latin-1"))

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), header]}
        await send(message)

    return send_with_id


def _anthropic(request: Request) -> bool:
    """Asked by an Anthropic client (its SDKs send `anthropic-version`): answer in its shapes."""
    return "anthropic-version" in request.headers


def _refuse(err: ApiError, anthropic_client: bool) -> Response:
    return err.response(body=anthropic.error_body(err) if anthropic_client else None)


def _refused(request: Request, err: ApiError, endpoint: str, anthropic_client: bool = False) -> Response:
    """A refusal of a route other than the model POST routes, counted and audited like theirs."""
    gw: Gateway = request.app.gateway
    gw.refused(
        err,
        client=request.client.host if request.client else None,
        endpoint=endpoint,
        request_id=CURRENT.get(),
    )
    return _refuse(err, anthropic_client)


def create_app(gw: Gateway) -> GatewayApp:
    async def models(request: Request) -> Response:
        shape = _anthropic(request)
        try:
            principal = await gw.guard.authenticate(request.headers)
        except ApiError as err:
            return _refused(request, err, "models", shape)
        return Response(orjson.dumps(model_list(gw, principal, shape)), media_type=_JSON)

    async def model(request: Request) -> Response:
        shape = _anthropic(request)
        try:
            principal = await gw.guard.authenticate(request.headers)
            entry = one_model(gw, principal, request.path_params["model"], shape)
        except ApiError as err:
            return _refused(request, err, "models", shape)
        return Response(orjson.dumps(entry), media_type=_JSON)

    async def stored(request: Request) -> Response:
        try:
            return await forward_stored(gw, request)
        except ApiError as err:
            return _refused(request, err, "responses")

    async def may_read_status(request: Request, endpoint: str) -> Response | bool:
        """With gateway.status_auth: True for the status key or any valid credential, False
        without one, the 401 for a wrong one. Without it: True."""
        if not gw.config.status_auth:
            return True
        if "authorization" not in request.headers and "x-api-key" not in request.headers:
            return False
        try:
            await gw.guard.authenticate_status(request.headers)
        except ApiError as err:
            return _refused(request, err, endpoint)
        return True

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=_JSON)

    async def ready(request: Request) -> Response:
        allowed = await may_read_status(request, "ready")
        if isinstance(allowed, Response):
            return allowed
        now = time.monotonic()
        body: dict[str, object] = {"status": "ready" if gw.ready() else "not ready"}
        if allowed:  # without a key (gateway.status_auth), probes still read the status code
            body["backends"] = {b.name: b.status_line(now) for b in gw.backends}
            body["models"] = gw.models()
            if gw.telemetry:
                body["telemetry"] = {name: redact_urls(t.status_line()) for name, t in gw.telemetry.items()}
        return Response(orjson.dumps(body), 200 if gw.ready() else 503, media_type=_JSON)

    async def metrics(request: Request) -> Response:
        allowed = await may_read_status(request, "metrics")
        if isinstance(allowed, Response):
            return allowed
        if not allowed:
            from waveidp.security.refusals import unauthorized

            return _refused(
                request,
                unauthorized("/metrics needs a key here (gateway.status_auth)", "missing_api_key"),
                "metrics",
            )
        return Response(gw.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(OPENAPI), media_type=_JSON)

    async def not_found(request: Request, exc: Exception) -> Response:
        return _refused(request, _unknown_route(request), "unknown")

    def _unknown_route(request: Request) -> ApiError:
        return ApiError(
            404,
            f"no route {request.method} {request.url.path}; the gateway serves POST "
            + ", ".join(sorted(ROUTES))
            + ", GET /v1/models, /v1/models/{model}, /v1/responses/{id} (docs/gateway.md)",
            code="unknown_route",
        )

    async def not_allowed(request: Request, exc: Exception) -> Response:
        not_allowed = ApiError(
            405,
            f"method {request.method} is not allowed on {request.url.path}",
            code="method_not_allowed",
            type="invalid_request_error",
        )
        return _refused(request, not_allowed, "unknown")

    async def crashed(request: Request, exc: Exception) -> Response:
        return internal_error(exc).response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        await probe_all(gw)
        tasks = [asyncio.create_task(health_loop(gw))]
        if gw.telemetry:
            tasks.append(asyncio.create_task(telemetry_loop(gw)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await gw.close()
            await gw.guard.close()

    hot = {path: OpenAIEndpoint(gw, endpoint) for path, endpoint in ROUTES.items()}
    routes = [
        *(Route(path, app, methods=["POST"]) for path, app in hot.items()),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model:path}", model, methods=["GET"]),
        Route("/v1/responses/{rid}", stored, methods=["GET", "DELETE"]),
        Route("/v1/responses/{rid}/input_items", stored, methods=["GET"]),
        Route("/v1/responses/{rid}/cancel", stored, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = GatewayApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_allowed, Exception: crashed},
    )
    app.gateway = gw
    app.hot = hot
    if gw.config.cors_origins:
        app.cors = CORSMiddleware(
            app.dispatch,
            allow_origins=gw.config.cors_origins,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[
                "x-request-id",
                "request-id",
                "x-wave-backend",
                "retry-after",
                *(
                    f"x-ratelimit-{k}-{w}"
                    for k in ("limit", "remaining", "reset")
                    for w in ("requests", "tokens")
                ),
            ],
            max_age=600,
        )
    return app
