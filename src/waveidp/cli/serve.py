"""`wave serve` (the gateway over existing backends) and `wave up` (the embedded default, or a fleet
file's local parts, behind the gateway)."""

from __future__ import annotations

from pathlib import Path

import typer

from waveidp.cli._app import app, console, err_console


@app.command()
def serve(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="fleet file (wave.yaml) with the backends"
    ),
    upstream: list[str] = typer.Option(
        [], "--upstream", "-u", help="OpenAI-compatible base URL; repeatable; models found via /v1/models"
    ),
    engine: str = typer.Option("auto", help="engine kind of --upstream URLs (auto: detected from /metrics)"),
    upstream_key_env: str | None = typer.Option(None, help="environment variable with the --upstream key"),
    host: str | None = typer.Option(None, help="listen address (default: gateway.host, 127.0.0.1)"),
    port: int | None = typer.Option(None, help="listen port (default: gateway.port, 4000)"),
    policy: str | None = typer.Option(
        None, help="routing policy for every model: predicted-latency, least-outstanding, round-robin"
    ),
    max_body_bytes: int | None = typer.Option(None, help="largest request body accepted (default 4 MiB)"),
    log_level: str = typer.Option("warning", help="debug shows each routing decision"),
    no_auth: bool = typer.Option(False, "--no-auth", help="no API keys at all (refused off 127.0.0.1)"),
    redis: str | None = typer.Option(None, "--redis", help="Redis URL: rate limits shared by replicas"),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM); needs --tls-key"),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)"),
    oidc_issuer: str | None = typer.Option(None, help="accept OIDC tokens from this issuer (iss)"),
    oidc_audience: str | None = typer.Option(None, help="audience (aud) the OIDC tokens must carry"),
    oidc_jwks_url: str | None = typer.Option(None, help="the issuer's JWKS URL"),
    log_prompts: bool = typer.Option(False, "--log-prompts", help="keep prompt text in the audit log"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="gateway processes on the port (default: gateway.workers, 1)"
    ),
) -> None:
    """Serve the OpenAI-compatible gateway in front of the backends of --config and/or --upstream.

    API keys (`wave keys`), limits, the audit log (`wave audit`) and `/admin/keys` are on; see
    docs/security.md. With --workers N, N processes share the port (docs/gateway.md, Workers)."""
    import os

    from waveidp.errors import InputError
    from waveidp.fleet.models import GatewayConfig, RoutingConfig
    from waveidp.gateway import (
        Gateway,
        backends_from_fleet,
        backends_from_urls,
        create_app,
    )
    from waveidp.gateway.routing import make_policy
    from waveidp.gateway.server import run
    from waveidp.gateway.workers import become_worker, listen_socket, say_ready
    from waveidp.run.api_key import resolve_api_key
    from waveidp.security.gateway_security import security_from_cli
    from waveidp.security.transport import tls_settings

    if config is None and not upstream:
        raise InputError(
            "no backends given",
            where="wave serve",
            fix="pass --upstream http://host:port (repeatable) or --config wave.yaml",
        )
    backends = []
    gateway_config, routing = GatewayConfig(), RoutingConfig()
    if config is not None:
        from waveidp import fleet

        f = fleet.load(config)
        backends += backends_from_fleet(f)
        gateway_config, routing = f.gateway, f.routing
    if upstream:
        key = os.environ.get(upstream_key_env) if upstream_key_env else None
        backends += backends_from_urls(upstream, engine, key)
    if policy is not None:
        make_policy(policy)  # unknown names fail here with the valid ones listed
        routing = routing.with_policy(policy)
    host = host or gateway_config.host
    port = port or gateway_config.port
    update: dict[str, object] = {"host": host, "port": port}
    if max_body_bytes is not None:
        update["max_body_bytes"] = max_body_bytes
    if workers is not None:
        update["workers"] = workers
    gateway_config = GatewayConfig.model_validate({**gateway_config.model_dump(), **update})
    api_key, source = resolve_api_key()
    tls = tls_settings(tls_cert, tls_key)
    scheme = "https" if tls else "http"
    worker: int | None = None
    if gateway_config.workers > 1:
        worker = _supervise(gateway_config.workers, host, port, scheme, redis, no_auth, api_key, source)
        if worker is None:
            return  # the parent, once its workers have stopped
    security = security_from_cli(
        host=host,
        bootstrap_key=api_key,
        no_auth=no_auth,
        redis_url=redis,
        oidc_issuer=oidc_issuer,
        oidc_audience=oidc_audience,
        oidc_jwks_url=oidc_jwks_url,
        log_prompts=log_prompts,
        workers=gateway_config.workers,
    )
    gw = Gateway(backends, security.guard, config=gateway_config, routing=routing)

    async def ready() -> None:
        if worker is not None:
            say_ready()
            return
        shown = "from WAVE_API_KEY" if source == "WAVE_API_KEY" else f"{api_key}  (stored in {source})"
        console.print(
            f"[bold green]gateway ready[/] {scheme}://{host}:{port}/v1  models: "
            f"{', '.join(gw.models()) or '(discovering)'}  API key: {shown}",
            highlight=False,
        )

    sock = None
    if worker is not None:
        become_worker()
        sock = listen_socket(host, port)
    app_ = create_app(gw)
    security.mount(app_)
    try:
        run(app_, host, port, log_level=log_level, on_ready=ready, tls=tls, sock=sock)
    finally:
        security.close()


def _supervise(
    workers: int,
    host: str,
    port: int,
    scheme: str,
    redis: str | None,
    no_auth: bool,
    api_key: str,
    source: str,
) -> int | None:
    """`wave serve --workers N`: check once what would fail in every worker, then fork the workers.
    Returns None in the parent once they have stopped, and the worker's index in each worker."""
    from waveidp.gateway.workers import Supervisor
    from waveidp.security.gateway_security import check_redis, check_workers
    from waveidp.security.transport import check_bind

    check_bind(host, auth_enabled=not no_auth)
    if redis:
        check_redis(redis)
    check_workers(workers=workers, redis_url=redis, auth=not no_auth)

    def ready() -> None:
        shown = "from WAVE_API_KEY" if source == "WAVE_API_KEY" else f"{api_key}  (stored in {source})"
        console.print(
            f"[bold green]gateway ready[/] {scheme}://{host}:{port}/v1  {workers} workers  API key: {shown}",
            highlight=False,
        )

    return Supervisor(workers, host, port).run(ready)


@app.command()
def up(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="fleet file: start its local embedded engines, connect the rest"
    ),
    port: int = typer.Option(4000, help="gateway port"),
    host: str = typer.Option("127.0.0.1", help="gateway listen address"),
    json: bool = typer.Option(False, "--json", help="print the ready line as JSON"),
    log_level: str = typer.Option("warning"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="gateway processes on the port (default: gateway.workers, 1)"
    ),
) -> None:
    """Start the embedded engine (llama-server, SmolLM2-135M-Instruct) behind the gateway; Ctrl-C stops it.

    With --workers N, N gateway processes share the port (docs/gateway.md, Workers)."""
    import logging

    import uvloop

    from waveidp.run.up import UpInfo, up_with_workers, workers_wanted
    from waveidp.run.up import up as run_up

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def show(info: UpInfo) -> None:
        if json:
            _print_line(
                {
                    "url": info.url,
                    "models": info.models,
                    "api_key": info.api_key,
                    "key_source": info.key_source,
                    "logs": str(info.logs),
                    "children": info.children,
                    "workers": count,
                }
            )
            return
        console.print("[bold green]Wave is up[/]", highlight=False)
        console.print(f"  URL      {info.url}", highlight=False)
        console.print(f"  models   {', '.join(info.models)}", highlight=False)
        if count > 1:
            console.print(f"  workers  {count} gateway processes", highlight=False)
        console.print(f"  API key  {info.api_key}  ({info.key_source})", highlight=False, soft_wrap=True)
        console.print(f"  logs     {info.logs}", highlight=False, soft_wrap=True)
        console.print("Press Ctrl-C to stop.", highlight=False)

    count = workers_wanted(config, workers)
    if not json:
        err_console.print("starting the engine(s) and the gateway...", highlight=False)
    if count > 1:
        parent = up_with_workers(
            host=host, port=port, config=config, workers=count, on_ready=show, log_level=log_level
        )
        if not parent:
            return  # a gateway worker, once stopped
    else:
        uvloop.run(run_up(host=host, port=port, config=config, on_ready=show, log_level=log_level))
    if not json:
        console.print("stopped", highlight=False)


def _print_line(obj: dict[str, object]) -> None:
    """One JSON document on one line, so a supervisor or test can read the ready line."""
    import sys

    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()
