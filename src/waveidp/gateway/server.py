"""Run the gateway under uvicorn (uvloop + httptools, no access log: it costs on the hot path).

`GatewayServer` leaves signals to its owner: `wave up` must stop its engine children after the
gateway, which uvicorn's own handlers (they re-raise the signal on exit) would not allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING

import uvicorn

from waveidp.errors import ApiError, WaveError
from waveidp.gateway.http_protocol import ConnectionLimits, guarded_protocol
from waveidp.gateway.request_ids import log_with_request_ids

if TYPE_CHECKING:
    from waveidp.gateway.app import GatewayApp


def uvicorn_config(
    app: GatewayApp, host: str, port: int, *, log_level: str = "warning", tls: dict[str, str] | None = None
) -> uvicorn.Config:
    """`tls`: uvicorn's ssl_certfile/ssl_keyfile, from `waveidp.security.transport.tls_settings`."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_http(app),
        ws="none",
        access_log=False,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=30,
        server_header=False,
        date_header=False,
        # Nothing reads the client address; the middleware scanned every request's headers.
        proxy_headers=False,
        **(tls or {}),  # type: ignore[arg-type]
    )


def guarded_http(app: GatewayApp) -> type[asyncio.Protocol]:
    """httptools with the gateway's connection limits (`waveidp.gateway.http_protocol`): a 431 it
    answers is counted and audited as a request, a connection it closes is counted by reason."""
    gw = app.gateway
    same = (
        "max_header_bytes",
        "max_headers",
        "header_timeout_s",
        "body_timeout_s",
        "write_timeout_s",
        "refused_body_bytes_per_minute",
    )
    limits = ConnectionLimits(
        **{name: getattr(gw.config, name) for name in same},
        max_connections_per_client=gw.config.max_connections_per_client,
        uncapped=tuple(gw.config.uncapped_addresses),
    )
    too_large = ApiError(431, "request headers too large", code="request_header_fields_too_large")

    def on_refused(kind: str, what: str | int, address: str) -> None:
        if kind == "request":
            gw.refused(too_large, client=address)
        else:
            m = gw.metrics
            m.child(m.connections_closed, str(what)).inc()

    return guarded_protocol(limits, on_refused)


def raise_open_file_limit() -> None:
    """Every connection is a file descriptor: take the hard limit (often 1024 soft against
    500k hard), so that a few hundred idle connections cannot starve the rest."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1 << 20), hard))


class GatewayServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


# Collections of the youngest generation every 700 allocations of container objects ran about
# once a request (aiohttp and uvicorn make dozens of objects each) and took ~9 % of the CPU under
# wrk; almost all of them die by reference counting, so a collection finds little. Cycles are still
# collected, less often.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Move everything start-up made out of the collector's way, and collect less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def serve_until_stopped(
    app: GatewayApp,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    on_ready: Callable[[], None] | None = None,
    stop: asyncio.Event | None = None,
    tls: dict[str, str] | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or `stop` is set); `on_ready` runs once the socket is listening.
    `sock`: an already listening socket (a `--workers` worker's) instead of binding host:port."""
    stop = stop or asyncio.Event()
    stop_on_signals(stop)
    raise_open_file_limit()
    server = GatewayServer(uvicorn_config(app, host, port, log_level=log_level, tls=tls))
    # Before the socket listens: the collection takes tens of ms, which the first requests (a
    # client that waited for /ready) would otherwise wait out, and the router would learn from.
    tune_gc()
    serving = asyncio.create_task(server.serve(sockets=[sock] if sock is not None else None))
    stopped = asyncio.create_task(stop.wait())
    while not server.started and not serving.done():
        await asyncio.wait({serving, stopped}, timeout=0.02, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            break
    if server.started and on_ready is not None and not stop.is_set():
        on_ready()
    await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopped.cancel()
    await serving
    if not server.started and not stop.is_set():
        raise WaveError(
            f"the gateway could not listen on {host}:{port}", fix="is the port in use? try --port"
        )


def run(
    app: GatewayApp,
    host: str,
    port: int,
    *,
    log_level: str = "warning",
    on_ready: Callable[[], None] | None = None,
    tls: dict[str, str] | None = None,
    sock: socket.socket | None = None,
) -> None:
    log_with_request_ids(log_level)
    import uvloop

    uvloop.run(
        serve_until_stopped(app, host, port, log_level=log_level, on_ready=on_ready, tls=tls, sock=sock)
    )
