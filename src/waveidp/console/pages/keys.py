"""Keys and usage (admin): list, create (the secret shown once), rotate, revoke, edit models and
limits, and each key's requests, errors and tokens over time from the audit log.

Keys are read and written only through `waveidp.security.keys.KeyStore`, usage only through
`waveidp.security.audit`'s queries. A secret exists in a response exactly once: the answer to the
create or rotate that made it (never stored, never in a redirect, `Cache-Control: no-store`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from waveidp.console.access import Refused
from waveidp.console.charts import Chart
from waveidp.console.options import PATH
from waveidp.console.sessions import Session
from waveidp.console.ttl_cache import TtlCache
from waveidp.errors import InputError, NotFoundError
from waveidp.security import audit
from waveidp.security.keys import ApiKey, IssuedKey, KeyStore, parse_expiry

if TYPE_CHECKING:
    from waveidp.console.app import Console

RANGES = {"1h": (3600, 60), "24h": (86400, 900), "7d": (7 * 86400, 3600)}  # span, bucket (s)


def _int(form: Any, name: str) -> int | None:
    raw = str(form.get(name, "") or "").strip()
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"{name} must be a whole number, got '{raw[:40]}'") from None


def _models(form: Any) -> list[str]:
    raw = str(form.get("models", "") or "*")
    return [p for p in raw.replace(",", " ").split() if p]


def _expiry(form: Any) -> float | None:
    raw = str(form.get("expires", "") or "").strip()
    return parse_expiry(raw) if raw else None


def _key_settings(form: Any) -> dict[str, Any]:
    """Models, expiry and limits as the create and edit forms give them (blank = none)."""
    return {
        "models": _models(form),
        "expires_at": _expiry(form),
        "rpm": _int(form, "rpm"),
        "tpm": _int(form, "tpm"),
        "max_concurrent": _int(form, "max_concurrent"),
    }


def usage_charts(path: Any, principal: str | None, span: str) -> list[dict[str, Any]]:
    seconds, bucket = RANGES.get(span, RANGES["24h"])
    now = time.time()
    since = now - seconds
    since -= since % bucket
    rows = {round(b.start): b for b in audit.usage(path, since=since, bucket_s=bucket, principal=principal)}
    xs = [since + i * bucket for i in range(int((now - since) // bucket) + 1)]
    got = [rows.get(round(x)) for x in xs]
    requests = Chart("Requests and errors", xs, bars=True)
    requests.add("requests", [b.requests if b else 0 for b in got])
    requests.add("errors", [b.errors if b else 0 for b in got])
    tokens = Chart("Tokens", xs, bars=True)
    tokens.add("in (prompt)", [b.tokens_in if b else 0 for b in got])
    tokens.add("out (completion)", [b.tokens_out if b else 0 for b in got])
    return [requests.to_dict(), tokens.to_dict()]


def routes(console: Console) -> list[Route]:
    access = console.access
    aggregates = TtlCache(ttl_s=10.0)

    def store() -> KeyStore:
        keys = console.security.keys
        if keys is None:
            raise Refused(409, "authentication is off (--no-auth): there are no API keys to manage")
        return keys

    def shown(
        request: Request, principal: str | None, issued: IssuedKey | None, error: str | None
    ) -> dict[str, Any]:
        """What both key pages show: the secret just made (once), an error, the usage charts."""
        path = console.security.audit_where
        span = request.query_params.get("range", "24h")
        return {
            "issued": issued,
            "secret": issued.key.reveal() if issued else None,
            "error": error,
            "charts": aggregates.get(("usage", principal, span), lambda: usage_charts(path, principal, span))
            if audit.readable(path)
            else [],
            "span": span,
            "ranges": list(RANGES),
        }

    def listing(
        request: Request,
        *,
        issued: IssuedKey | None = None,
        error: str | None = None,
        status: int = 200,
        form: Any = None,
    ) -> Response:
        keys = store().list(include_revoked=request.query_params.get("all") == "1")
        path = console.security.audit_where
        day = (
            aggregates.get("totals", lambda: audit.totals(path, since=time.time() - 86400))
            if audit.readable(path)
            else {}
        )
        return console.render(
            request,
            "keys.html",
            status=status,
            keys=keys,
            day=day,
            form=form or {},
            show_all=request.query_params.get("all") == "1",
            **shown(request, None, issued, error),
        )

    async def index(request: Request, session: Session) -> Response:
        return listing(request)

    async def create(request: Request, session: Session) -> Response:
        form = request.state.form
        name = str(form.get("name", "")).strip()
        try:
            issued = store().create(name, **_key_settings(form))
        except InputError as exc:
            console.audit_action(session.subject, "console.keys.create", 400, name[:64])
            return listing(request, error=str(exc), status=400, form=form)
        console.audit_action(session.subject, "console.keys.create", 201, issued.record.name)
        return listing(request, issued=issued, status=201)

    def detail_page(
        request: Request,
        key: ApiKey,
        *,
        issued: IssuedKey | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        return console.render(
            request, "key.html", status=status, key=key, **shown(request, key.name, issued, error)
        )

    def find(key_id: str) -> ApiKey:
        try:
            return store().get(key_id)
        except NotFoundError:
            raise Refused(404, f"no key with id {key_id[:20]}") from None

    async def detail(request: Request, session: Session) -> Response:
        return detail_page(request, find(request.path_params["key_id"]))

    async def rotate(request: Request, session: Session) -> Response:
        key = find(request.path_params["key_id"])
        try:
            issued = store().rotate(key.id)
        except InputError as exc:
            return detail_page(request, key, error=str(exc), status=400)
        console.audit_action(session.subject, "console.keys.rotate", 200, key.name)
        return detail_page(request, issued.record, issued=issued)

    async def revoke(request: Request, session: Session) -> Response:
        key = find(request.path_params["key_id"])
        store().revoke(key.id)
        console.audit_action(session.subject, "console.keys.revoke", 200, key.name)
        return RedirectResponse(f"{PATH}/keys", status_code=303)

    async def edit(request: Request, session: Session) -> Response:
        key = find(request.path_params["key_id"])
        form = request.state.form
        try:
            updated = store().update(key.id, **_key_settings(form))
        except InputError as exc:
            return detail_page(request, key, error=str(exc), status=400)
        console.audit_action(session.subject, "console.keys.edit", 200, key.name)
        return RedirectResponse(f"{PATH}/keys/{updated.id}", status_code=303)

    return [
        Route("/keys", access.page(index, role="admin"), methods=["GET"]),
        Route("/keys", access.page(create, role="admin"), methods=["POST"]),
        Route("/keys/{key_id}", access.page(detail, role="admin"), methods=["GET"]),
        Route("/keys/{key_id}/rotate", access.page(rotate, role="admin"), methods=["POST"]),
        Route("/keys/{key_id}/revoke", access.page(revoke, role="admin"), methods=["POST"]),
        Route("/keys/{key_id}/edit", access.page(edit, role="admin"), methods=["POST"]),
    ]
