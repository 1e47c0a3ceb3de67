"""The gateway's seam to security: who is calling, may they, are they within limits, and the record.

The gateway calls three things per request:

    principal = await guard.authenticate(request.headers)          # 401
    admission = await guard.admit(principal, model, endpoint)      # 403, 429 (+ headers)
    ...forward, stream...
    await guard.finish(admission, status=..., backend=..., tokens_in=..., tokens_out=...)

and `guard.refused(...)` for a request it turns away before or without an admission (a 400, a
413, a 401 from `authenticate`), so that the audit log sees every request. `admission.headers`
are the `x-ratelimit-*` headers to add to the response.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from waveidp.errors import ApiError
from waveidp.security.audit import AuditEntry, AuditLog, bounded_name
from waveidp.security.jwt_auth import JwtVerifier
from waveidp.security.keys import PREFIX, KeyStore
from waveidp.security.limits import AddressBuckets, Decision, Limiter, MemoryLimiter, client_of
from waveidp.security.principal import ANONYMOUS, Principal
from waveidp.security.refusals import forbidden, unauthorized
from waveidp.security.secrets import Secret

# Audit rows for refused requests from one client address a minute (a burst of as many), per worker.
REFUSED_ROWS_PER_MINUTE = 600


class GuardObserver(Protocol):
    """What the guard reports beyond a request's outcome (the gateway's metrics implement it)."""

    def limits_unavailable(self, limit: str, outcome: str) -> None: ...


# The bootstrap key `wave up` prints (WAVE_API_KEY or WAVE_HOME/gateway.key): every model, no limits.
DEFAULT_PRINCIPAL = Principal(kind="key", name="default", bucket="key:default")
# WAVE_METRICS_KEY: reads /metrics and /ready (with gateway.status_auth), uses no model.
STATUS_PRINCIPAL = Principal(kind="key", name="metrics", bucket="key:metrics", models=())


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The credential from `Authorization: Bearer ...` or `x-api-key`."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class Authenticator:
    """API keys and/or OIDC tokens; with neither configured, everyone is `ANONYMOUS`."""

    def __init__(
        self,
        keys: KeyStore | None = None,
        jwt: JwtVerifier | None = None,
        default_key: Secret | None = None,
        status_key: Secret | None = None,
    ) -> None:
        self.keys = keys
        self.jwt = jwt
        self.default_key = default_key
        self.status_key = status_key

    @property
    def enabled(self) -> bool:
        return self.keys is not None or self.jwt is not None or self.default_key is not None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        if not self.enabled:
            return ANONYMOUS
        token = bearer_token(headers)
        if token is None:
            raise unauthorized("no API key: send 'Authorization: Bearer <key>'", code="missing_api_key")
        if self.default_key is not None and self.default_key.matches(token):
            return DEFAULT_PRINCIPAL
        if token.startswith(PREFIX) and self.keys is not None:
            return (await self.keys.authenticate_async(token)).principal()
        if self.jwt is not None and token.count(".") == 2:
            return await self.jwt.verify(token)
        raise unauthorized("invalid API key")

    async def authenticate_status(self, headers: Mapping[str, str]) -> Principal:
        """Who reads `/metrics` or `/ready` where they need a key: the status key
        (`WAVE_METRICS_KEY`, for Prometheus), or any credential a model request would take."""
        if self.status_key is not None:
            token = bearer_token(headers)
            if token is not None and self.status_key.matches(token):
                return STATUS_PRINCIPAL
        return await self.authenticate(headers)


@dataclass
class Admission:
    principal: Principal
    model: str | None
    endpoint: str | None
    decision: Decision
    started: float
    request_id: str | None = None

    @property
    def headers(self) -> dict[str, str]:
        return self.decision.headers()


def _check_scope(principal: Principal, model: str) -> None:
    if not principal.may_use(model):
        raise forbidden(f"'{principal.name}' may not use model '{bounded_name(model)}'", param="model")


class Guard:
    def __init__(
        self,
        authenticator: Authenticator,
        limiter: Limiter | None = None,
        audit: AuditLog | None = None,
        *,
        unshared_workers: int = 0,
        refused_rows_per_minute: int = REFUSED_ROWS_PER_MINUTE,
    ) -> None:
        """`unshared_workers`: the gateway runs this many processes (> 1) whose in-memory limits
        are not shared (no Redis); a key with limits is then refused rather than counted per worker."""
        self.authenticator = authenticator
        self.limiter: Limiter = limiter or MemoryLimiter()
        self.audit = audit
        self.unshared_workers = unshared_workers
        # audit rows of refused requests, per client address (and worker): see `refused`
        self.refusal_rows = AddressBuckets(refused_rows_per_minute)
        self.left_out: dict[str, int] = {}
        self.observer: GuardObserver | None = None  # the gateway's metrics count what it reports

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return await self.authenticator.authenticate(headers)

    async def authenticate_status(self, headers: Mapping[str, str]) -> Principal:
        return await self.authenticator.authenticate_status(headers)

    async def admit(
        self,
        principal: Principal,
        model: str | None,
        *,
        endpoint: str | None = None,
        request_id: str | None = None,
    ) -> Admission:
        """Check the model scope (403) and take from the limits (429); the caller must `finish`."""
        started = time.monotonic()
        if self.audit is not None and self.audit.full:
            raise ApiError(
                503,
                "the audit log's table is unavailable and its local spool is full: no request is "
                "served until it can be recorded",
                type="api_error",
                code="audit_unavailable",
                headers={"Retry-After": "5"},
            )
        if model is not None:
            _check_scope(principal, model)
        if principal.limits.unlimited:  # the bootstrap key, and keys made without limits
            decision = Decision(True, principal.limits)
            return Admission(principal, model, endpoint, decision, started, request_id)
        if self.unshared_workers > 1:
            raise ApiError(
                503,
                f"'{principal.name}' has per-key limits, and this gateway runs {self.unshared_workers} "
                "workers without --redis, where each would count them on its own; "
                "restart it with --redis URL or --workers 1",
                type="api_error",
                code="limits_need_redis",
            )
        decision = await self.limiter.acquire(principal.bucket, principal.limits)
        if decision.unchecked and self.observer is not None:
            outcome = "allowed" if decision.allowed else "refused"
            for unchecked in decision.unchecked:
                self.observer.limits_unavailable(unchecked, outcome)
        if decision.reason == "unavailable":
            raise ApiError(
                503,
                f"'{principal.name}' has a {decision.unchecked[0]} limit, which cannot be checked while "
                "the limits' Redis is unreachable; try again shortly",
                type="api_error",
                code="limits_unavailable",
                headers={"Retry-After": "1"},
            )
        if not decision.allowed:
            what = {
                "requests": "requests per minute",
                "tokens": "tokens per minute",
                "concurrency": "concurrent requests",
            }[decision.reason or "requests"]
            limit = {
                "requests": principal.limits.rpm,
                "tokens": principal.limits.tpm,
                "concurrency": principal.limits.max_concurrent,
            }[decision.reason or "requests"]
            raise ApiError(
                429,
                f"rate limit reached for '{principal.name}': {limit} {what}",
                type="rate_limit_error",
                code=f"rate_limit_{decision.reason}",
                headers=decision.headers(),
            )
        return Admission(principal, model, endpoint, decision, started, request_id)

    def check_scope(self, admission: Admission, model: str) -> None:
        """The model scope (403) of an admission taken before its body was read (`admit` with no
        model: the limits come first, so that a limited key pays for every request it sends, read or
        refused); the model is recorded with it."""
        admission.model = model
        _check_scope(admission.principal, model)

    async def finish(
        self,
        admission: Admission,
        *,
        status: int,
        backend: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        prompt: str | None = None,
        latency_s: float | None = None,
    ) -> None:
        """Charge real usage, free the concurrency slot, append the audit row. Call exactly once."""
        if admission.decision.ticket is not None:
            await self.limiter.release(admission.decision.ticket, (tokens_in or 0) + (tokens_out or 0))
        if self.audit is not None:
            self.audit.record(
                AuditEntry(
                    principal=admission.principal.name,
                    status=status,
                    ts=time.time(),
                    request_id=admission.request_id,
                    endpoint=admission.endpoint,
                    model=admission.model,
                    backend=backend,
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_s=time.monotonic() - admission.started if latency_s is None else latency_s,
                    prompt=prompt,
                )
            )

    def refused(
        self,
        refusal: ApiError,
        *,
        principal: Principal | None = None,
        endpoint: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        started: float | None = None,
        client: str | None = None,
    ) -> None:
        """Audit a request turned away without an admission. With the `client` address, within
        its client's budget of `refused_rows_per_minute` rows (an IPv4 address or IPv6 /64:
        `limits.client_of`): beyond it a refusal adds no row (a flood of 401s would otherwise grow
        the database by its rate), and the client's next row is preceded by one saying how many
        were left out (endpoint `refusals-not-audited:N from CLIENT`)."""
        if self.audit is None:
            return
        if client is not None:
            client = client_of(client)
            now = time.monotonic()
            budget = self.refusal_rows.get(client, now)
            if budget.refill(now) < 1:
                self.left_out[client] = self.left_out.get(client, 0) + 1
                if len(self.left_out) > self.refusal_rows.max_addresses:
                    self.left_out.clear()  # counts kept for at most as many addresses as buckets
                return
            budget.level -= 1
            skipped = self.left_out.pop(client, 0)
            if skipped:
                self.audit.record(
                    AuditEntry(
                        principal="-",
                        status=refusal.status,
                        ts=time.time(),
                        endpoint=f"refusals-not-audited:{skipped} from {client}",
                    )
                )
        self.audit.record(
            AuditEntry(
                principal=principal.name if principal else "-",
                status=refusal.status,
                ts=time.time(),
                request_id=request_id,
                endpoint=endpoint,
                model=model,
                latency_s=None if started is None else time.monotonic() - started,
            )
        )

    async def close(self) -> None:
        """Close the connections of the event loop (Redis, the JWKS client, PostgreSQL's async pool)
        and flush the audit log; the gateway calls it as its event loop ends."""
        await self.limiter.close()
        if self.jwt is not None:
            await self.jwt.close()
        if self.authenticator.keys is not None:
            await self.authenticator.keys.aclose()
        if self.audit is not None:
            self.audit.close()
            self.audit = None

    @property
    def jwt(self) -> JwtVerifier | None:
        return self.authenticator.jwt
