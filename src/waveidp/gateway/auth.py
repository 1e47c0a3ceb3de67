"""The security seam: the gateway talks to one `Guard` per request.

    principal = await guard.authenticate(request.headers)                     # 401
    admission = await guard.admit(principal, model, endpoint=..., request_id=...)  # 403, 429
    ... forward ...
    await guard.finish(admission, status=..., backend=..., tokens_in=..., tokens_out=...)

and `guard.refused(error, ...)` for a request turned away before admission, so an audit log sees
every request. `waveidp.security.guard.Guard` is the full one (keys, JWT, limits, audit); this
module holds `SingleKeyGuard`, the one-key check `wave serve` and `wave up` start with.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from waveidp.gateway.errors import ApiError
from waveidp.security.principal import Principal


class Admission(Protocol):
    @property
    def headers(self) -> dict[str, str]: ...


class Guard(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal: ...

    async def admit(
        self,
        principal: Principal,
        model: str | None,
        *,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> Any: ...

    async def finish(
        self,
        admission: Any,
        *,
        status: int,
        backend: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        prompt: str | None = None,
    ) -> None: ...

    def refused(
        self,
        refusal: Any,
        *,
        principal: Principal | None = None,
        endpoint: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        started: float | None = None,
    ) -> None: ...


def bearer_token(headers: Mapping[str, str]) -> str | None:
    header = headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class OpenAdmission:
    headers: dict[str, str] = field(default_factory=dict)


_ADMITTED = OpenAdmission()


class SingleKeyGuard:
    """Accepts exactly one key (`WAVE_API_KEY` or the stored one), compared in constant time; no limits."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("empty API key")
        self._key = key.encode()
        self._principal = Principal(kind="key", name="default", bucket="key:default", scopes=frozenset({"*"}))

    def __repr__(self) -> str:
        return "SingleKeyGuard(key=<hidden>)"

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        token = bearer_token(headers)
        if token is None:
            raise ApiError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                code="missing_api_key",
                headers={"www-authenticate": "Bearer"},
            )
        if not hmac.compare_digest(token.encode(), self._key):
            raise ApiError(
                401, "invalid API key", code="invalid_api_key", headers={"www-authenticate": "Bearer"}
            )
        return self._principal

    async def admit(
        self,
        principal: Principal,
        model: str | None,
        *,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> OpenAdmission:
        return _ADMITTED

    async def finish(
        self,
        admission: Any,
        *,
        status: int,
        backend: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        prompt: str | None = None,
    ) -> None:
        return None

    def refused(
        self,
        refusal: Any,
        *,
        principal: Principal | None = None,
        endpoint: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        started: float | None = None,
    ) -> None:
        return None
