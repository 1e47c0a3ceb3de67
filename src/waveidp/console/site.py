"""The console's Starlette sub-app, mounted at `/console` of the gateway's app.

    setup.mounts.append(console_mount(options))      # gateway.compose mounts it, and closes it
    console = mount_console(app, security, options)  # the same, by hand

Only `/console/...` paths reach it: the gateway's three OpenAI POST routes are answered before
Starlette's router runs (`gateway.app.GatewayApp`), so the console costs them nothing but the
`RecentRequests` ring it turns on (an id and one ring entry per request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from waveidp.console import pages, signin
from waveidp.console.access import Refused
from waveidp.console.app import STATIC, Console
from waveidp.console.headers import SecurityHeaders
from waveidp.console.options import PATH, ConsoleOptions
from waveidp.gateway.app import GatewayApp
from waveidp.gateway.recent import RecentRequests
from waveidp.security.gateway_security import GatewaySecurity

log = logging.getLogger("waveidp.console")


def sub_app(console: Console) -> Starlette:
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return console.refusal(request, exc.status, exc.message)

    async def not_found(request: Request, exc: Exception) -> Response:
        return console.refusal(request, 404, f"no console page at {request.url.path}")

    async def crashed(request: Request, exc: Exception) -> Response:
        log.exception("console error on %s", request.url.path)
        return console.refusal(request, 500, f"internal console error ({type(exc).__name__}); see the log")

    routes: list[Any] = [
        *signin.routes(console),
        *pages.build(console),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(
        routes=routes,
        exception_handlers={Refused: refused, 404: not_found, 405: not_found, Exception: crashed},
    )


def mount_console(app: GatewayApp, security: GatewaySecurity, options: ConsoleOptions) -> Console:
    """Serve the console at `/console` of the gateway's app; `Console.close` when it stops."""
    gw = app.gateway
    console = Console(gw, security, options)
    console.hot = dict(app.hot)
    gw.recent = RecentRequests(options.recent_requests)

    async def to_console(request: Request) -> Response:
        return RedirectResponse(PATH + "/", status_code=308)

    app.router.routes.insert(0, Mount(PATH, app=SecurityHeaders(sub_app(console))))
    app.router.routes.insert(0, Route(PATH, to_console, methods=["GET"]))
    return console


def console_mount(options: ConsoleOptions) -> Callable[[GatewayApp, GatewaySecurity], Callable[[], None]]:
    """For `GatewaySetup.mounts`: mount the console where the gateway is composed, return its close."""

    def mount(app: GatewayApp, security: GatewaySecurity) -> Callable[[], None]:
        return mount_console(app, security, options).close

    return mount
