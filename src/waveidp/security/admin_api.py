"""`/admin/keys`: manage API keys over HTTP, guarded by the admin key (never by an API key).

    GET    /admin/keys                      list (add ?include_revoked=true for all)
    POST   /admin/keys                      create; the answer holds the key, shown this once
    POST   /admin/keys/{name_or_id}/rotate  new secret, same key; shown this once
    DELETE /admin/keys/{name_or_id}         revoke

The admin key comes from `WAVE_ADMIN_KEY`, `WAVE_ADMIN_KEY_FILE` or `WAVE_ADMIN_KEY_VAULT`
(see `waveidp.security.secrets`). Without one the admin API answers 403 to everyone.

In the gateway, `admin_app` puts `AdminGate` in front of the routes: it checks the admin key
before FastAPI reads a byte of the body, bounds the body, rate-limits each client address, and
writes one audit row per admin request, refused or not.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from waveidp.errors import ApiError, InputError, NotFoundError
from waveidp.security.audit import AuditEntry
from waveidp.security.guard import bearer_token
from waveidp.security.keys import IssuedKey, KeyStore, parse_expiry
from waveidp.security.limits import AddressBuckets, client_of
from waveidp.security.refusals import unauthorized
from waveidp.security.secrets import Secret
from waveidp.security.state import StoreUnavailable

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from waveidp.security.audit import AuditLog


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)
    models: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=100
    )
    expires: str | None = Field(
        default=None, max_length=64, description="a duration like 30d / 12h, or an ISO 8601 date"
    )
    rpm: int | None = Field(default=None, ge=1, le=10**9)
    tpm: int | None = Field(default=None, ge=1, le=10**12)
    max_concurrent: int | None = Field(default=None, ge=1, le=10**6)


def _issued(issued: IssuedKey) -> dict[str, Any]:
    return {**issued.record.to_dict(), "key": issued.key.reveal()}


def check_admin(admin_key: Secret | None, headers: Any) -> None:
    """Nothing when `headers` carry the admin key; else the 403 (no admin key configured) or 401."""
    if admin_key is None:
        raise ApiError(
            403,
            "the admin API is disabled: no admin key is configured",
            type="permission_error",
            code="admin_disabled",
        )
    token = bearer_token(headers)
    if token is None:
        raise unauthorized("the admin API needs 'Authorization: Bearer <admin key>'", code="missing_api_key")
    if not admin_key.matches(token):
        raise unauthorized("invalid admin key")


def admin_router(store: KeyStore, admin_key: Secret | None, *, prefix: str = "/admin") -> APIRouter:
    def require_admin(request: Request) -> None:
        check_admin(admin_key, request.headers)

    router = APIRouter(prefix=prefix, tags=["admin"], dependencies=[Depends(require_admin)])

    def guarded(call: Any) -> Any:
        try:
            return call()
        except ApiError as err:
            return err.response()
        except NotFoundError as e:
            return ApiError(
                404, str(e), type="invalid_request_error", code="key_not_found", param="name_or_id"
            ).response()
        except InputError as e:
            return ApiError(400, str(e), code="invalid_key_request").response()
        except StoreUnavailable as e:  # PostgreSQL down: keys in use go on, none can be made or changed
            headers = {"Retry-After": "5"}
            return ApiError(
                503, str(e), type="api_error", code="key_store_unavailable", headers=headers
            ).response()

    @router.get("/keys")
    def list_keys(include_revoked: bool = False) -> Any:
        return {"object": "list", "data": [k.to_dict() for k in store.list(include_revoked=include_revoked)]}

    @router.post("/keys", status_code=201)
    def create_key(body: KeyCreate) -> Any:
        def create() -> Any:
            expires = parse_expiry(body.expires) if body.expires else None
            issued = store.create(
                body.name,
                models=body.models,
                expires_at=expires,
                rpm=body.rpm,
                tpm=body.tpm,
                max_concurrent=body.max_concurrent,
            )
            return JSONResponse(_issued(issued), status_code=201)

        return guarded(create)

    @router.post("/keys/{name_or_id}/rotate")
    def rotate_key(name_or_id: str) -> Any:
        return guarded(lambda: _issued(store.rotate(name_or_id)))

    @router.delete("/keys/{name_or_id}")
    def revoke_key(name_or_id: str) -> Any:
        return guarded(lambda: store.revoke(name_or_id).to_dict())

    return router


# --- the gate in front of the routes --------------------------------------------------------------

ADMIN_RPM = 60  # admin requests a minute from one client address
FAILURE_COST = 6  # a refused admin key costs this many: 10 wrong keys a minute
MAX_ADMIN_BODY = 64 * 1024  # a key's JSON is a few hundred bytes
_TARGET_CHARS = 64


class AdminGate:
    """ASGI in front of the admin routes: per-address rate limit, the admin key before the body,
    a bounded body, and one audit row per request (principal `admin` or `-`; endpoint the action,
    e.g. `admin:rotate-key alice`; the answer's status): every refused one, and every one of the key
    routes (the other routers, such as the deployments API, audit their own actions)."""

    def __init__(self, app: ASGIApp, admin_key: Secret | None, audit: AuditLog | None = None) -> None:
        self.app = app
        self.admin_key = admin_key
        self.audit = audit
        self.buckets = AddressBuckets(ADMIN_RPM)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        client = scope.get("client")
        address = client[0] if client else "?"
        action = _action(scope)
        bucket = self.buckets.get(client_of(address), started)
        status = [0]
        authorized = False

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            if bucket.refill(started) < 1:
                retry = math.ceil((1 - bucket.level) * 60 / ADMIN_RPM)
                refusal = ApiError(
                    429,
                    f"too many admin requests from {address}: at most {ADMIN_RPM} a minute, "
                    f"a refused admin key counting {FAILURE_COST}",
                    code="admin_rate_limited",
                    headers={"Retry-After": str(max(1, retry))},
                )
                await refusal.response()(scope, receive, sending)
                return
            from starlette.datastructures import Headers

            headers = Headers(scope=scope)
            try:
                check_admin(self.admin_key, headers)
            except ApiError as refusal:
                await refusal.response()(scope, receive, sending)
                return
            authorized = True
            body = await _read_bounded(headers.get("content-length"), receive)
            if body is None:
                too_large = ApiError(
                    413, f"admin request body over {MAX_ADMIN_BODY} bytes", code="body_too_large"
                )
                await too_large.response()(scope, receive, sending)
                return
            await self.app(scope, _replay(body, receive), sending)
        finally:
            bucket.level -= 1 if authorized else FAILURE_COST
            # the other routers (deployments) audit what they change themselves: one row each
            own = action != "admin:unknown" or not authorized or status[0] == 413
            if self.audit is not None and own:
                self.audit.record(
                    AuditEntry(
                        principal="admin" if authorized else "-",
                        status=status[0] or 499,
                        ts=time.time(),
                        endpoint=action,
                        latency_s=time.monotonic() - started,
                    )
                )


def admin_app(
    store: KeyStore, admin_key: Secret | None, audit: AuditLog | None = None, routers: Sequence[Any] = ()
) -> AdminGate:
    """The `/admin` app the gateway mounts: the key routes and `routers` (FastAPI, OpenAI error
    shapes) behind the gate."""
    from fastapi import FastAPI

    from waveidp.security.refusals import install_handlers

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_handlers(app)
    app.include_router(admin_router(store, admin_key, prefix=""))
    for router in routers:
        app.include_router(router)
    return AdminGate(app, admin_key, audit)


def _action(scope: Scope) -> str:
    """What an admin request asks, for the audit log: `admin:rotate-key alice` (target bounded)."""
    path = scope["path"].removeprefix(scope.get("root_path", "")).removeprefix("/admin")
    parts = [p for p in path.split("/") if p]
    method = scope["method"]
    if parts == ["keys"]:
        verb = {"GET": "list-keys", "POST": "create-key"}.get(method)
        if verb:
            return f"admin:{verb}"
    if len(parts) >= 2 and parts[0] == "keys":
        target = parts[1] if len(parts[1]) <= _TARGET_CHARS else parts[1][:_TARGET_CHARS] + "..."
        if method == "DELETE" and len(parts) == 2:
            return f"admin:revoke-key {target}"
        if method == "POST" and parts[2:] == ["rotate"]:
            return f"admin:rotate-key {target}"
    return "admin:unknown"


async def _read_bounded(length: str | None, receive: Receive) -> bytes | None:
    """The whole body, or None once it is over MAX_ADMIN_BODY (declared or counted)."""
    if length is not None and (not length.isdigit() or int(length) > MAX_ADMIN_BODY):
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)  # the client left; the route sees an empty body
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_ADMIN_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the routes: the body already read, then whatever the connection says next."""
    sent = [False]

    async def replay() -> Message:
        if not sent[0]:
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
