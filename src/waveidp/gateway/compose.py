"""One gateway put together from its configuration: the one place `wave serve` and `wave up` (and
each of their `--workers`) build it.

    setup = GatewaySetup(backends, GatewayConfig(port=4000), RoutingConfig(), security_options(...))
    serve(setup, on_ready=lambda gw: print(gw.models()))   # one process, until SIGINT/SIGTERM
    prepare_workers(...); serve_workers(setup, on_ready=...)  # setup.config.workers processes
    with compose(setup) as app: ...                         # the app, in an event loop of the caller's

The backends are built (and, for `--upstream`, their engines detected) once, in the command's
process; the security parts (key store, audit writer, limits) are built in the process that
serves, after the fork, since none of them may cross one.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from waveidp.fleet.models import GatewayConfig, RoutingConfig
from waveidp.gateway.app import GatewayApp, create_app
from waveidp.gateway.backends import BackendState
from waveidp.gateway.server import run
from waveidp.gateway.state import Gateway
from waveidp.gateway.workers import Supervisor, listen_socket
from waveidp.security.gateway_security import SecurityOptions, build_security


@dataclass
class GatewaySetup:
    """What one gateway is made of: its backends, its `gateway:` and `routing:` settings (host, port
    and workers included), its security options, and TLS (uvicorn's ssl_certfile/ssl_keyfile).
    `body_limit_setting` says where `config.max_body_bytes` came from (the 413 names it)."""

    backends: list[BackendState]
    config: GatewayConfig
    routing: RoutingConfig
    security: SecurityOptions
    tls: dict[str, str] = field(default_factory=dict)
    body_limit_setting: str = "the default; raise it with --max-body-bytes or gateway.max_body_bytes"


def body_limit_setting(config: GatewayConfig, file: Path | None, flag: bool = False) -> str:
    """Where the body limit of `config` was set: `--max-body-bytes`, the fleet file, or the default."""
    if flag:
        return "--max-body-bytes"
    if file is not None and "max_body_bytes" in config.model_fields_set:
        return f"gateway.max_body_bytes in {file}"
    return GatewaySetup.body_limit_setting


@contextlib.contextmanager
def compose(setup: GatewaySetup) -> Iterator[GatewayApp]:
    """The gateway's app (`app.gateway` its state), security mounted; the audit log is flushed and
    the key store closed on the way out."""
    cfg = setup.config
    security = build_security(setup.security, host=cfg.host, workers=cfg.workers)
    try:
        gw = Gateway(
            setup.backends,
            security.guard,
            config=cfg,
            routing=setup.routing,
            body_limit_setting=setup.body_limit_setting,
        )
        app = create_app(gw)
        security.mount(app)
        yield app
    finally:
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
