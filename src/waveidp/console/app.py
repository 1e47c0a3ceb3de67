"""What every console page works with: the gateway's state and security, the options, sessions,
access rules, templates, and the audit of console actions (`Console`). The routes are put
together in `console.site`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from waveidp.console import filters
from waveidp.console.access import Access, FailedSignIns
from waveidp.console.oidc import OidcClient
from waveidp.console.options import PATH, ConsoleOptions, missing_assets
from waveidp.console.sessions import SessionStore
from waveidp.errors import ConfigError
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
