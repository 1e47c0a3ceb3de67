"""Signing in and out: the admin key form, the OIDC authorization code + PKCE flow, logout.

Before sign-in there is no session to hold a CSRF token, so the sign-in form carries a random value
that must equal a short-lived cookie set with the form (double submit), and an `Origin` from
another site is refused. API keys never open the console: only the admin key does, or OIDC.
"""

from __future__ import annotations

import hmac
import secrets
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from waveidp.console.access import (
    COOKIE,
    Refused,
    check_origin,
    clear_session_cookie,
    own_origin,
    safe_next,
    secure,
    set_session_cookie,
)
from waveidp.console.oidc import SignInError
from waveidp.console.options import PATH
from waveidp.console.sessions import Role, Session
from waveidp.security.keys import PREFIX

if TYPE_CHECKING:
    from waveidp.console.app import Console

PRE_COOKIE = "wave_console_pre"
OIDC_COOKIE = "wave_console_oidc"


def routes(console: Console) -> list[Route]:
    options = console.options
    access = console.access

    def login_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
        pre = secrets.token_urlsafe(24)
        response = console.render(
            request,
            "login.html",
            status=status,
            pre=pre,
            error=error,
            next=safe_next(request.query_params.get("next")),
            oidc=options.oidc is not None,
            issuer=options.oidc.issuer if options.oidc else None,
            admin_key_set=options.admin_key is not None,
        )
        response.set_cookie(
            PRE_COOKIE,
            pre,
            path=PATH,
            max_age=900,
            httponly=True,
            secure=secure(request, options),
            samesite="strict",
        )
        return response

    async def login(request: Request) -> Response:
        if request.method == "GET":
            if access.session(request) is not None:
                return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
            return login_page(request, error=request.query_params.get("error"))
        check_origin(request, options)
        form = await request.form()
        pre, cookie = str(form.get("pre", "")), request.cookies.get(PRE_COOKIE, "")
        if not pre or not cookie or not hmac.compare_digest(pre.encode(), cookie.encode()):
            raise Refused(403, "the sign-in form expired or came from elsewhere: reload it and try again")
        who = request.client.host if request.client else "-"
        wait = console.failed_signins.blocked(who)
        if wait:
            return login_page(request, error=f"too many wrong keys: try again in {wait:.0f} s", status=429)
        given = str(form.get("admin_key", "")).strip()
        if options.admin_key is None or not given or not options.admin_key.matches(given):
            console.failed_signins.failed(who)
            console.audit_action("-", "console.sign-in", 401)
            api_key = given.startswith(PREFIX) or (
                options.bootstrap_key is not None and options.bootstrap_key.matches(given)
            )
            message = (
                "that is an API key: API keys never open the console, only the admin key does"
                if api_key
                else "no admin key is configured: set WAVE_ADMIN_KEY"
                if options.admin_key is None
                else "wrong admin key"
            )
            return login_page(request, error=message, status=401)
        session_id = console.sessions.create("admin", "admin-key", "admin")
        console.audit_action("admin", "console.sign-in", 200)
        response = RedirectResponse(safe_next(str(form.get("next", ""))), status_code=303)
        set_session_cookie(response, request, options, session_id)
        response.delete_cookie(PRE_COOKIE, path=PATH)
        return response

    async def oidc_start(request: Request) -> Response:
        if console.oidc is None:
            raise Refused(404, "OIDC sign-in is not configured")
        redirect_uri = own_origin(request, options) + PATH + "/auth/callback"
        try:
            state, pending, url = await console.oidc.start(redirect_uri)
        except SignInError as exc:
            return login_page(request, error=str(exc), status=502)
        console.sessions.put_pending(state, pending)
        response = RedirectResponse(url, status_code=303)
        # Lax, not Strict: the identity provider's redirect back is a cross-site navigation
        response.set_cookie(
            OIDC_COOKIE,
            state,
            path=PATH + "/auth",
            max_age=600,
            httponly=True,
            secure=secure(request, options),
            samesite="lax",
        )
        return response

    async def oidc_callback(request: Request) -> Response:
        if console.oidc is None:
            raise Refused(404, "OIDC sign-in is not configured")
        q = request.query_params
        if q.get("error"):
            return login_page(request, error=f"the identity provider said: {q.get('error')}", status=401)
        state, code, cookie = q.get("state", ""), q.get("code", ""), request.cookies.get(OIDC_COOKIE, "")
        if not state or not code or not cookie or not hmac.compare_digest(state.encode(), cookie.encode()):
            return login_page(request, error="this sign-in did not start in this browser", status=400)
        pending = console.sessions.take_pending(state)
        if pending is None:
            return login_page(request, error="this sign-in has expired or was already used", status=400)
        try:
            who = await console.oidc.finish(pending, code)
        except SignInError as exc:
            console.audit_action("-", "console.sign-in.oidc", 401)
            return login_page(request, error=str(exc), status=401)
        role: Role = "admin" if who.admin else "viewer"
        session_id = console.sessions.create(who.subject, "oidc", role, who.access_token)
        console.audit_action(who.subject, "console.sign-in.oidc", 200)
        # A page that moves on by itself: a redirect here would still be part of the cross-site
        # navigation, and the browser would not send the new SameSite=Strict cookie with it.
        response = console.render(request, "signed_in.html", target=PATH + "/")
        set_session_cookie(response, request, options, session_id)
        response.delete_cookie(OIDC_COOKIE, path=PATH + "/auth")
        return response

    async def logout(request: Request, session: Session) -> Response:
        console.sessions.end(request.cookies.get(COOKIE))
        console.audit_action(session.subject, "console.sign-out", 200)
        response = RedirectResponse(PATH + "/login", status_code=303)
        clear_session_cookie(response, request, options)
        return response

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/auth/oidc", oidc_start, methods=["GET"]),
        Route("/auth/callback", oidc_callback, methods=["GET"]),
        Route("/logout", access.page(logout), methods=["POST"]),
    ]
