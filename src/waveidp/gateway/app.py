"""The ASGI application: OpenAI routes, liveness/readiness, metrics, and the background health loop.

app = create_app(Gateway(backends, security.guard))   # see waveidp.security.gateway_security
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from waveidp.errors import ApiError
from waveidp.gateway.errors import internal_error
from waveidp.gateway.exchange import handle
from waveidp.gateway.health import health_loop, probe_all
from waveidp.gateway.openapi import OPENAPI
from waveidp.gateway.request_info import PATHS, Endpoint
from waveidp.gateway.state import Gateway

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
    """Starlette for everything but the three OpenAI POST endpoints, which skip its middleware and
    routing: measured under wrk, that stack halved the requests/s the gateway passes through."""

    hot: dict[str, OpenAIEndpoint]
    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self.hot.get(scope["path"])
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def models_list(gw: Gateway) -> Response:
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
    return Response(orjson.dumps({"object": "list", "data": data}), media_type=_JSON)


def _refused(gw: Gateway, err: ApiError, endpoint: str) -> Response:
    """A refusal of a GET route, audited and counted like a model request's."""
    gw.metrics.child(gw.metrics.requests, "", "", str(err.status)).inc()
    gw.guard.refused(err, endpoint=endpoint)
    return err.response()


def create_app(gw: Gateway) -> GatewayApp:
    async def models(request: Request) -> Response:
        try:
            await gw.guard.authenticate(request.headers)
        except ApiError as err:
            return _refused(gw, err, "models")
        return models_list(gw)

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
            return _refused(gw, err, endpoint)
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
        return Response(orjson.dumps(body), 200 if gw.ready() else 503, media_type=_JSON)

    async def metrics(request: Request) -> Response:
        allowed = await may_read_status(request, "metrics")
        if isinstance(allowed, Response):
            return allowed
        if not allowed:
            from waveidp.security.refusals import unauthorized

            return _refused(
                gw,
                unauthorized("/metrics needs a key here (gateway.status_auth)", "missing_api_key"),
                "metrics",
            )
        return Response(gw.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return Response(orjson.dumps(OPENAPI), media_type=_JSON)

    async def not_found(request: Request, exc: Exception) -> Response:
        return ApiError(
            404,
            f"no route {request.method} {request.url.path}; the gateway serves "
            "/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models",
            code="unknown_route",
        ).response()

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return ApiError(
            405,
            f"method {request.method} is not allowed on {request.url.path}",
            code="method_not_allowed",
            type="invalid_request_error",
        ).response()

    async def crashed(request: Request, exc: Exception) -> Response:
        return internal_error(exc).response()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.start()
        await probe_all(gw)
        loop_task = asyncio.create_task(health_loop(gw))
        try:
            yield
        finally:
            loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop_task
            await gw.close()

    hot = {path: OpenAIEndpoint(gw, endpoint) for endpoint, path in PATHS.items()}
    routes = [
        *(Route(path, app, methods=["POST"]) for path, app in hot.items()),
        Route("/v1/models", models, methods=["GET"]),
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
    return app
