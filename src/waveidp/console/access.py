"""Who may see a console page or change something through it: the session cookie, roles, CSRF.

Every console route goes through `Access.page` (or `Access.action` for what changes state):

- no live session: a page redirects to the sign-in page; an htmx fragment answers 401 with
  `HX-Redirect`, so the browser goes there too;
- an admin-only route for a viewer: 403;
- a state-changing request (any method but GET/HEAD): its CSRF token (form field `csrf_token` or
  header `X-CSRF-Token`, the session's own random token) must match, and an `Origin` header, which
  browsers send with every POST, must be the console's own origin. The cookie is also
  SameSite=Strict, so another site's form never carries it.
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from waveidp.console.options import PATH, ConsoleOptions
from waveidp.console.sessions import Role, Session, SessionStore

if TYPE_CHECKING:
    from starlette.datastructures import FormData

COOKIE = "wave_console"
SAFE_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[Request, Session], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


class Refused(Exception):
    """A console request turned away; `status` and a message for the page or fragment."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def own_origin(request: Request, options: ConsoleOptions) -> str:
    if options.public_url:
        return options.public_url.rstrip("/")
    return f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


def secure(request: Request, options: ConsoleOptions) -> bool:
    return options.secure_cookie if options.secure_cookie is not None else request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, options: ConsoleOptions, value: str) -> None:
    response.set_cookie(
        COOKIE, value, path=PATH, httponly=True, secure=secure(request, options), samesite="strict"
    )


def clear_session_cookie(response: Response, request: Request, options: ConsoleOptions) -> None:
    response.delete_cookie(
        COOKIE, path=PATH, httponly=True, secure=secure(request, options), samesite="strict"
    )


def check_origin(request: Request, options: ConsoleOptions) -> None:
    """A cross-site POST names another origin (or `null`); refuse it whatever it carries."""
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request, options):
        raise Refused(403, f"request from another origin ({origin[:100]}) refused")


async def form_token(request: Request) -> tuple[str | None, FormData | None]:
    header = request.headers.get("x-csrf-token")
    if header:
        return header, None
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get("csrf_token")
        return (value if isinstance(value, str) else None), form
    return None, None


class FailedSignIns:
    """At most `limit` wrong admin keys per client address per `window_s`: then 429 until it ages out."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._seen: dict[str, deque[float]] = {}

    def _recent(self, who: str) -> deque[float]:
        now = time.monotonic()
        q = self._seen.setdefault(who, deque())
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, who: str) -> float:
        """Seconds until `who` may try again (0 when allowed)."""
        q = self._recent(who)
        if len(q) < self.limit:
            return 0.0
        return max(0.0, self.window_s - (time.monotonic() - q[0]))

    def failed(self, who: str) -> None:
        self._recent(who).append(time.monotonic())
        if len(self._seen) > 10_000:  # bounded whatever addresses a spray comes from
            self._seen = {k: v for k, v in self._seen.items() if v}


class Access:
    def __init__(self, sessions: SessionStore, options: ConsoleOptions) -> None:
        self.sessions = sessions
        self.options = options

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def page(self, handler: Handler, *, role: Role = "viewer") -> Endpoint:
        """Wrap a route: a signed-in session with `role` (admin includes viewer), CSRF on writes."""

        async def endpoint(request: Request) -> Response:
            session = self.session(request)
            if session is None:
                return self._to_sign_in(request)
            if role == "admin" and not session.is_admin:
                raise Refused(403, "this needs a console admin (the admin key, or an OIDC admin group)")
            if request.method not in SAFE_METHODS:
                check_origin(request, self.options)
                token, form = await form_token(request)
                if token is None or not hmac.compare_digest(token.encode(), session.csrf.encode()):
                    raise Refused(403, "CSRF token missing or wrong: reload the page and try again")
                if form is not None:
                    request.state.form = form
            request.state.session = session
            return await handler(request, session)

        return endpoint

    def _to_sign_in(self, request: Request) -> Response:
        if request.headers.get("hx-request") == "true":
            return Response("signed out", 401, headers={"HX-Redirect": f"{PATH}/login"})
        target = request.url.path if request.method in SAFE_METHODS else PATH + "/"
        response = RedirectResponse(f"{PATH}/login?next={_quote(target)}", status_code=303)
        return response


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site: `//evil`, `/\\evil`)."""
    if value and value.startswith(PATH + "/") and "//" not in value and "\\" not in value:
        return value
    return PATH + "/"
