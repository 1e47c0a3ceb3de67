"""Everything security the gateway needs, built from one options object.

    options = SecurityOptions(bootstrap_key=..., redis_url=..., oidc=...)   # or security_options(...)
    security = build_security(options, host="127.0.0.1")
    gw = Gateway(backends, security.guard, ...)      # the gateway's seam (`waveidp.security.guard.Guard`)
    app = create_app(gw); security.mount(app)        # adds /admin/keys
    ...serve...; security.close()                    # flushes the audit log

(`waveidp.gateway.compose` does this for `wave serve` and `wave up`.)

The guard accepts the bootstrap key (`WAVE_API_KEY` / `WAVE_HOME/gateway.key`, the one `wave up`
prints; every model, no limits), keys from `wave keys create` (their models and limits), and OIDC
tokens when configured. Limits live in this process, or in Redis with `redis_url`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from waveidp.errors import ConfigError
from waveidp.security.audit import AuditLog, default_path
from waveidp.security.audit_spool import DEFAULT_MAX_BYTES
from waveidp.security.guard import REFUSED_ROWS_PER_MINUTE, Authenticator, Guard
from waveidp.security.jwt_auth import JwtVerifier, OidcConfig
from waveidp.security.keys import KeyStore
from waveidp.security.limits import RedisDown, make_limiter
from waveidp.security.secrets import Secret, redact_urls
from waveidp.security.state import audit_table, key_table
from waveidp.security.transport import check_bind

if TYPE_CHECKING:
    from starlette.applications import Starlette


@dataclass
class SecurityOptions:
    auth: bool = True
    bootstrap_key: Secret | None = None
    keys_db: Path | None = None
    oidc: OidcConfig | None = None
    redis_url: str | None = None
    audit: bool = True
    audit_db: Path | None = None
    log_prompts: bool = False
    admin_key: Secret | None = None
    status_key: Secret | None = None  # WAVE_METRICS_KEY: /metrics and /ready with gateway.status_auth
    database_url: str | None = None  # PostgreSQL for keys and the audit log; None: SQLite in WAVE_HOME
    audit_spool_max_bytes: int = DEFAULT_MAX_BYTES
    redis_down: RedisDown = field(default_factory=RedisDown)  # what each limit does while Redis is down


@dataclass
class GatewaySecurity:
    guard: Guard
    keys: KeyStore | None
    admin_app: Any
    admin_key: Secret | None = None  # what opens /admin and the console
    # the audit log to read (the console): a PostgreSQL URL or the SQLite file; None: auditing off
    audit_where: str | Path | None = None

    @property
    def auth_enabled(self) -> bool:
        return self.guard.authenticator.enabled

    def mount(self, app: Starlette) -> None:
        """Serve `/admin/keys` from the gateway's app (a FastAPI sub-app with the OpenAI error shape)."""
        if self.admin_app is not None:
            from starlette.routing import Mount

            app.router.routes.insert(0, Mount("/admin", app=self.admin_app))

    def close(self) -> None:
        """Flush and close the audit log once the server has stopped (safe to call twice)."""
        if self.guard.audit is not None:
            self.guard.audit.close()
            self.guard.audit = None
        if self.keys is not None:
            self.keys.close()
            self.keys = None


def build_security(
    options: SecurityOptions,
    *,
    host: str,
    workers: int = 1,
    admin_routers: Sequence[Any] = (),
    refused_rows_per_minute: int = REFUSED_ROWS_PER_MINUTE,
) -> GatewaySecurity:
    """The guard, key store, audit log and admin app of a gateway listening on `host`, one of
    `workers` processes sharing the key store, audit log and (with Redis) the limits; refuses a
    public bind without authentication. `admin_routers`: more FastAPI routers under `/admin` (each
    checks the admin key itself, e.g. `wave up`'s `/admin/deployments`). `refused_rows_per_minute`:
    the audit rows of refused requests one client address adds a minute (`Guard.refused`)."""
    check_bind(host, auth_enabled=options.auth)
    keys = KeyStore(key_table(options.database_url, options.keys_db)) if options.auth else None
    if keys is not None:
        keys.table.watch()
    verifier = JwtVerifier(options.oidc) if options.auth and options.oidc else None
    bootstrap = options.bootstrap_key if options.auth else None
    authenticator = Authenticator(
        keys=keys,
        jwt=verifier,
        default_key=bootstrap,
        status_key=options.status_key if options.auth else None,
    )
    unshared = workers if workers > 1 and not options.redis_url else 0
    if unshared and keys is not None:
        refuse_unshared_limits(keys, workers)
    audit = (
        AuditLog(
            audit_table(options.database_url, options.audit_db),
            log_prompts=options.log_prompts,
            spool_max_bytes=options.audit_spool_max_bytes,
        )
        if options.audit
        else None
    )
    limiter = make_limiter(options.redis_url, options.redis_down)
    guard = Guard(
        authenticator,
        limiter,
        audit,
        unshared_workers=unshared,
        refused_rows_per_minute=refused_rows_per_minute,
    )
    admin = None
    if keys is not None:
        from waveidp.security.admin_api import admin_app

        admin = admin_app(keys, options.admin_key, audit, routers=admin_routers)
    audit_where = (options.database_url or options.audit_db or default_path()) if options.audit else None
    return GatewaySecurity(guard, keys, admin, options.admin_key, audit_where)


def refuse_unshared_limits(keys: KeyStore, workers: int) -> None:
    """Per-key limits kept in each worker's memory would allow N times the limit: refuse to start."""
    limited = [k.name for k in keys.list() if not k.limits.unlimited]
    if limited:
        raise ConfigError(
            f"{len(limited)} API key(s) have limits ({', '.join(limited[:5])}), and --workers {workers} "
            "without --redis would count them in each worker separately",
            fix="add --redis redis://host:6379/0 (limits shared by all workers), or use --workers 1",
        )


def prepare_workers(options: SecurityOptions, *, host: str, workers: int) -> None:
    """What `--workers N` does once in its parent before it starts any worker: refuse what every
    worker would refuse (a public bind without authentication, limits it could not share), and
    create the key and audit databases the workers will open."""
    check_bind(host, auth_enabled=options.auth)
    if options.auth:
        store = KeyStore(key_table(options.database_url, options.keys_db))
        try:
            if workers > 1 and not options.redis_url:
                refuse_unshared_limits(store, workers)
        finally:
            store.close()
    if options.audit:
        audit_table(options.database_url, options.audit_db).close()


def check_redis(url: str) -> None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
        client.ping()
        client.close()
    except (redis.RedisError, ValueError) as exc:
        raise ConfigError(
            f"cannot reach Redis at --redis {redact_urls(url)}: {type(exc).__name__}",
            fix="check the URL, e.g. redis://127.0.0.1:6379/0",
        ) from None
