"""The authentication seam: one `Authenticator` and any number of `RequestHook`s.

The gateway calls `authenticate(request)` before routing, `admit(principal, info)` on each hook
(rate limits, model permissions; raise `ApiError` to refuse) and `complete(...)` after the last
byte (usage accounting, audit). `waveidp.security` supplies the real ones; this module holds
the single-key check `wave serve` and `wave up` start with.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request

from waveidp.gateway.errors import ApiError
from waveidp.gateway.request_info import RequestInfo
from waveidp.security.principal import Principal


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request, for accounting and audit (no prompt text, no keys)."""

    model: str
    endpoint: str
    backend: str | None
    status: int
    stream: bool
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    duration_s: float
    error: str | None = None


class Authenticator(Protocol):
    async def authenticate(self, request: Request) -> Principal: ...


class RequestHook(Protocol):
    async def admit(self, principal: Principal, info: RequestInfo) -> Any: ...

    async def complete(self, principal: Principal, record: RequestRecord, admitted: Any) -> None: ...


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class SingleKeyAuthenticator:
    """Accepts exactly one key (`WAVE_API_KEY` or the stored one); compares in constant time."""

    def __init__(self, key: str) -> None:
        if not key:
            raise ValueError("empty API key")
        self._key = key.encode()
        self._principal = Principal(kind="key", name="default", bucket="key:default", scopes=frozenset({"*"}))

    def __repr__(self) -> str:
        return "SingleKeyAuthenticator(key=<hidden>)"

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
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
