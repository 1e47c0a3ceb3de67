"""`/admin/keys`: manage API keys over HTTP, guarded by the admin key (never by an API key).

    GET    /admin/keys                      list (add ?include_revoked=true for all)
    POST   /admin/keys                      create; the answer holds the key, shown this once
    POST   /admin/keys/{name_or_id}/rotate  new secret, same key; shown this once
    DELETE /admin/keys/{name_or_id}         revoke

The admin key comes from `WAVE_ADMIN_KEY`, `WAVE_ADMIN_KEY_FILE` or `WAVE_ADMIN_KEY_VAULT`
(see `waveidp.security.secrets`). Without one the admin API answers 403 to everyone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from waveidp.errors import ApiError, InputError, NotFoundError
from waveidp.security.guard import bearer_token
from waveidp.security.keys import IssuedKey, KeyStore, parse_expiry
from waveidp.security.refusals import unauthorized
from waveidp.security.secrets import Secret
from waveidp.security.state import StoreUnavailable


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
