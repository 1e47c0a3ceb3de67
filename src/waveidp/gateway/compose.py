"""One gateway put together from its configuration: the one place `wave serve` and `wave up` (and
each of their `--workers`) build it.

    setup = GatewaySetup(backends, cfg, RoutingConfig(), security_options(cfg, key))  # cfg: fleet.settings
    serve(setup, on_ready=lambda gw: print(gw.models()))   # one process, until SIGINT/SIGTERM
    prepare_workers(...); serve_workers(setup, on_ready=...)  # setup.config.workers processes
    with compose(setup) as app: ...                         # the app, in an event loop of the caller's

`setup.mounts` add parts above the gateway (the console, `waveidp.console.console_mount`): each is
called with the app and its security once they exist, in the process that serves, and returns what
closes it.

The backends are built (and, for `--upstream`, their engines detected) once, in the command's
process; the security parts (key store, audit writer, limits) are built in the process that
serves, after the fork, since none of them may cross one.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waveidp.fleet.models import GatewayConfig, RoutingConfig
from waveidp.gateway.app import GatewayApp, create_app
from waveidp.gateway.backends import BackendState
from waveidp.gateway.server import run
from waveidp.gateway.state import Gateway
from waveidp.gateway.telemetry import NodeTelemetry
from waveidp.gateway.workers import Supervisor, listen_socket
from waveidp.security.gateway_security import GatewaySecurity, SecurityOptions, build_security
from waveidp.security.secrets import Secret

# Mounts something on the app (after /admin) in the serving process; returns its close.
Mount = Callable[[GatewayApp, GatewaySecurity], Callable[[], None]]


@dataclass
class GatewaySetup:
    """What one gateway is made of: its backends, its `gateway:` and `routing:` settings (host, port
    and workers included), its security options, and TLS (uvicorn's ssl_certfile/ssl_keyfile).
    `body_limit_setting` says where `config.max_body_bytes` came from (the 413 names it);
    `telemetry`: the nodes whose GPU and host telemetry it reads (`build.telemetry_from_fleet`)."""

    backends: list[BackendState]
    config: GatewayConfig
    routing: RoutingConfig
    security: SecurityOptions
    tls: dict[str, str] = field(default_factory=dict)
    body_limit_setting: str = "the default; raise it with --max-body-bytes or gateway.max_body_bytes"
    mounts: list[Mount] = field(default_factory=list)
    admin_routers: list[Any] = field(default_factory=list)  # more routes under /admin (wave up's deployments)
    telemetry: list[NodeTelemetry] = field(default_factory=list)


def body_limit_setting(
    file_config: GatewayConfig | None, file: Path | None, environ: Mapping[str, str], flag: bool = False
) -> str:
    """Where the body limit was set (flag > environment > file > default, as `fleet.settings`):
    `--max-body-bytes`, `WAVE_MAX_BODY_BYTES`, the fleet file, or the default."""
    if flag:
        return "--max-body-bytes"
    if "WAVE_MAX_BODY_BYTES" in environ:
        return "WAVE_MAX_BODY_BYTES"
    if file_config is not None and "max_body_bytes" in file_config.model_fields_set:
        return f"gateway.max_body_bytes in {file}"
    return GatewaySetup.body_limit_setting


@contextlib.contextmanager
def compose(setup: GatewaySetup) -> Iterator[GatewayApp]:
    """The gateway's app (`app.gateway` its state), security mounted; the audit log is flushed and
    the key store closed on the way out."""
    cfg = setup.config
    security = build_security(
        setup.security,
        host=cfg.host,
        workers=cfg.workers,
        admin_routers=setup.admin_routers,
        refused_rows_per_minute=cfg.refused_audit_rows_per_minute,
    )
    closes: list[Callable[[], None]] = []
    try:
        gw = Gateway(
            setup.backends,
            security.guard,
            config=cfg,
            routing=setup.routing,
            body_limit_setting=setup.body_limit_setting,
            telemetry=setup.telemetry,
        )
        app = create_app(gw)
        security.mount(app)
        closes += [mount(app, security) for mount in setup.mounts]
        yield app
    finally:
        for close in reversed(closes):
            close()
        security.close()


def serve(
    setup: GatewaySetup,
    *,
    on_ready: Callable[[Gateway], None],
    log_level: str = "warning",
    sock: socket.socket | None = None,
) -> None:
    """Serve in this process until SIGINT/SIGTERM; `on_ready` once it listens. `sock`: a worker's
    listening socket instead of binding the configured host and port (bound here first, so that a
    port in use is one clear `WaveError`)."""
    if sock is None:
        sock = listen_socket(setup.config.host, setup.config.port, reuse_port=False)
    with compose(setup) as app:
        run(
            app,
            setup.config.host,
            setup.config.port,
            log_level=log_level,
            on_ready=lambda: on_ready(app.gateway),
            tls=setup.tls,
            sock=sock,
        )


def serve_workers(
    setup: GatewaySetup,
    *,
    on_ready: Callable[[bool], None],
    log_level: str = "warning",
    needed: Callable[[], str | None] | None = None,
) -> None:
    """`setup.config.workers` processes on one port (`workers.Supervisor`), each serving `setup` on a
    socket of its own, once `security.gateway_security.prepare_workers` has checked what would fail
    in every one. `on_ready(routable)` once every worker listens (`routable`: a backend was up in
    one of them); `needed`: see `Supervisor`."""
    cfg = setup.config

    def worker(sock: socket.socket, ready: Callable[[bool], None]) -> None:
        serve(setup, on_ready=lambda gw: ready(gw.ready()), log_level=log_level, sock=sock)

    Supervisor(cfg.workers, cfg.host, cfg.port, needed=needed).run(on_ready, worker)


def security_options(
    cfg: GatewayConfig, bootstrap_key: str | None, admin_key: Secret | None = None
) -> SecurityOptions:
    """The security side of one gateway configuration (`waveidp.fleet.settings`): checked once
    (Redis and PostgreSQL reachable, the metrics key strong enough); `admin_key` opens /admin and
    the console (`waveidp.run.api_key.resolve_admin_key`)."""
    from waveidp.security.gateway_security import check_redis
    from waveidp.security.jwt_auth import OidcConfig
    from waveidp.security.limits import RedisDown

    if cfg.redis_url:
        check_redis(cfg.redis_url)
    if cfg.database_url:
        from waveidp.security.state import prepare

        prepare(cfg.database_url)  # reachable, and the tables exist before any worker opens them
    from waveidp.security.secrets import check_strength, resolve

    # WAVE_METRICS_KEY[_FILE|_VAULT]: the key Prometheus reads /metrics with (gateway.status_auth)
    status_key = resolve("WAVE_METRICS_KEY", required=False) if cfg.auth else None
    oidc = None
    if cfg.oidc_issuer and cfg.oidc_audience and cfg.oidc_jwks_url:
        oidc = OidcConfig(jwks_url=cfg.oidc_jwks_url, issuer=cfg.oidc_issuer, audience=cfg.oidc_audience)
    return SecurityOptions(
        auth=cfg.auth,
        bootstrap_key=Secret(bootstrap_key, name="WAVE_API_KEY") if bootstrap_key and cfg.auth else None,
        oidc=oidc,
        redis_url=cfg.redis_url,
        audit=cfg.audit,
        log_prompts=cfg.log_prompts,
        admin_key=admin_key if cfg.auth else None,
        status_key=check_strength(status_key) if status_key is not None else None,
        database_url=cfg.database_url,
        audit_spool_max_bytes=cfg.audit_spool_max_bytes,
        redis_down=RedisDown(cfg.redis_down_rpm, cfg.redis_down_tpm, cfg.redis_down_concurrency),
    )
