"""The console's Starlette sub-app, mounted at `/console` of the gateway's app.

    console = mount_console(app, security, ConsoleOptions(admin_key=..., bootstrap_key=...))
    ...serve...
    console.close()

Only `/console/...` paths reach it: the gateway's three OpenAI POST routes are answered before
Starlette's router runs (`gateway.app.GatewayApp`), so the console costs them nothing but the
`RecentRequests` ring it turns on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from waveidp.console import filters
from waveidp.console.access import Access, FailedSignIns, Refused
from waveidp.console.headers import SecurityHeaders
from waveidp.console.oidc import OidcClient
from waveidp.console.options import PATH, ConsoleOptions, missing_assets
from waveidp.console.sessions import SessionStore
from waveidp.errors import ConfigError
from waveidp.gateway.recent import RecentRequests
from waveidp.gateway.state import Gateway
from waveidp.security.audit import AuditEntry
from waveidp.security.gateway_security import GatewaySecurity

log = logging.getLogger("waveidp.console")
STATIC = Path(__file__).parent / "static"


def check_assets() -> None:
    missing = missing_assets()
    if missing:
        raise ConfigError(
            f"the console's browser libraries are missing ({', '.join(missing)} in {STATIC / 'vendor'})",
            fix="run `make console-assets` (npm ci of web/console), or pass --no-console",
        )


class Console:
    def __init__(self, gw: Gateway, security: GatewaySecurity, options: ConsoleOptions) -> None:
        check_assets()
        self.gw = gw
        self.security = security
        self.options = options
        self.sessions = SessionStore(options.sessions_db)
        self.access = Access(self.sessions, options)
        self.oidc = OidcClient(options.oidc) if options.oidc else None
        self.failed_signins = FailedSignIns()
        self._closers: list[Callable[[], None]] = []
        self.hot: dict[str, Any] = {}  # the gateway's OpenAI endpoints, for the playground and benchmarks
        self.env = Environment(
            loader=PackageLoader("waveidp.console", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        filters.install(self.env)
        self.env.globals["base"] = PATH
        from waveidp.console import pages

        self.pages = pages.build(self)
        self.asgi = SecurityHeaders(self._starlette())

    def _starlette(self) -> Starlette:
        from waveidp.console import signin

        async def refused(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, Refused)
            return self.refusal(request, exc.status, exc.message)

        async def not_found(request: Request, exc: Exception) -> Response:
            return self.refusal(request, 404, f"no console page at {request.url.path}")

        async def crashed(request: Request, exc: Exception) -> Response:
            log.exception("console error on %s", request.url.path)
            return self.refusal(request, 500, f"internal console error ({type(exc).__name__}); see the log")

        async def root(request: Request) -> Response:
            return RedirectResponse(PATH + "/", status_code=308)

        routes: list[Any] = [
            *signin.routes(self),
            *self.pages,
            Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
        ]
        app = Starlette(
            routes=routes,
            exception_handlers={Refused: refused, 404: not_found, 405: not_found, Exception: crashed},
        )
        self.root_redirect = Route(PATH, root, methods=["GET"])
        return app

    def render(self, request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        html = self.env.get_template(template).render(
            request=request, session=session, path=request.url.path, **context
        )
        return HTMLResponse(html, status_code=status)

    def refusal(self, request: Request, status: int, message: str) -> Response:
        if request.headers.get("hx-request") == "true":
            return self.render(request, "fragments/refusal.html", status=status, message=message)
        return self.render(request, "refusal.html", status=status, status_code=status, message=message)

    def audit_action(self, principal: str, action: str, status: int, detail: str | None = None) -> None:
        """An admin action (sign-in, key created, bench started) as a row of the audit chain."""
        audit = self.security.guard.audit
        if audit is not None:
            audit.record(AuditEntry(principal=principal, status=status, endpoint=action, model=detail))

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def close(self) -> None:
        """Stop what the pages started (a running benchmark) and close the session store."""
        for fn in self._closers:
            fn()
        self.sessions.close()


def mount_console(app: Starlette, security: GatewaySecurity, options: ConsoleOptions) -> Console:
    """Serve the console at `/console` of the gateway's app (its `state.gateway`)."""
    gw: Gateway = app.state.gateway
    console = Console(gw, security, options)
    gw.recent = RecentRequests(options.recent_requests)
    console.hot = dict(getattr(app, "hot", {}))
    app.router.routes.insert(0, Mount(PATH, app=console.asgi))
    app.router.routes.insert(0, console.root_redirect)
    return console
