"""`wave serve` (the gateway over existing backends) and `wave up` (the embedded default, or a fleet
file's local parts, behind the gateway)."""

from __future__ import annotations

from pathlib import Path

import typer

from waveidp.cli._app import app, console, err_console, shown


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
    max_body_bytes: int | None = typer.Option(
        None, help="largest request body accepted (default: gateway.max_body_bytes, 32 MiB)"
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="browser origin allowed to call the gateway (CORS); repeatable; '*' for any"
    ),
    log_level: str = typer.Option("warning", help="debug shows each routing decision"),
    no_auth: bool = typer.Option(False, "--no-auth", help="no API keys at all (refused off 127.0.0.1)"),
    redis: str | None = typer.Option(None, "--redis", help="Redis URL: rate limits shared by replicas"),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="TLS certificate (PEM); needs --tls-key"),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="TLS private key (PEM)"),
    oidc_issuer: str | None = typer.Option(None, help="accept OIDC tokens from this issuer (iss)"),
    oidc_audience: str | None = typer.Option(None, help="audience (aud) the OIDC tokens must carry"),
    oidc_jwks_url: str | None = typer.Option(None, help="the issuer's JWKS URL"),
    log_prompts: bool = typer.Option(False, "--log-prompts", help="keep prompt text in the audit log"),
    status_auth: bool = typer.Option(
        False,
        "--status-auth",
        help="/metrics needs a key (WAVE_METRICS_KEY or an API key); /ready shows less",
    ),
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
    from waveidp.gateway import backends_from_fleet, backends_from_urls
    from waveidp.gateway.compose import GatewaySetup, body_limit_setting, serve_workers
    from waveidp.gateway.compose import serve as serve_gateway
    from waveidp.gateway.routing import make_policy
    from waveidp.gateway.state import Gateway
    from waveidp.run.api_key import resolve_api_key
    from waveidp.security.gateway_security import prepare_workers, security_options
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
    limit_setting = body_limit_setting(gateway_config, config, flag=max_body_bytes is not None)
    if upstream:
        key = os.environ.get(upstream_key_env) if upstream_key_env else None
        backends += backends_from_urls(upstream, engine, key)
    if policy is not None:
        make_policy(policy)  # unknown names fail here with the valid ones listed
        routing = routing.with_policy(policy)
    update: dict[str, object] = {"host": host or gateway_config.host, "port": port or gateway_config.port}
    if max_body_bytes is not None:
        update["max_body_bytes"] = max_body_bytes
    if workers is not None:
        update["workers"] = workers
    if status_auth:
        update["status_auth"] = True
    if cors_origin:
        update["cors_origins"] = cors_origin
    gateway_config = GatewayConfig.model_validate({**gateway_config.model_dump(), **update})
    # --no-auth: no key is needed, so none is made, checked or printed
    api_key, source = (None, "--no-auth") if no_auth else resolve_api_key()
    setup = GatewaySetup(
        backends,
        gateway_config,
        routing,
        security_options(
            bootstrap_key=api_key,
            no_auth=no_auth,
            redis_url=redis,
            oidc_issuer=oidc_issuer,
            oidc_audience=oidc_audience,
            oidc_jwks_url=oidc_jwks_url,
            log_prompts=log_prompts,
        ),
        tls_settings(tls_cert, tls_key),
        body_limit_setting=limit_setting,
    )
    url = f"{'https' if setup.tls else 'http'}://{gateway_config.host}:{gateway_config.port}/v1"
    key_line = _key_line(api_key, source)
    count = gateway_config.workers

    # One line whatever the terminal's width, also when written to a file (Rich wraps at 80
    # columns there): supervisors and scripts read it.
    def ready(gw: Gateway) -> None:
        if not gw.ready():
            say_not_routable(gw)
            return
        console.print(
            f"[bold green]gateway ready[/] {url}  models:",
            shown(", ".join(gw.models()) or "(discovering)"),  # names the upstreams chose
            f" API key: {key_line}",
            highlight=False,
            soft_wrap=True,
        )

    def say_not_routable(gw: Gateway | None) -> None:
        import time

        now = time.monotonic()
        why = "; ".join(b.status_line(now) for b in gw.backends) if gw is not None else "see /ready"
        console.print(
            f"[bold yellow]gateway listening, no backend up yet[/] {url}  (",
            shown(why),  # upstream error texts
            f")  requests wait with 503 until one is; API key: {key_line}",
            sep="",
            highlight=False,
            soft_wrap=True,
        )

    def workers_ready(routable: bool) -> None:
        if not routable:
            say_not_routable(None)
            return
        console.print(
            f"[bold green]gateway ready[/] {url}  {count} workers  API key: {key_line}",
            highlight=False,
            soft_wrap=True,
        )

    if count > 1:
        prepare_workers(setup.security, host=gateway_config.host, workers=count)
        serve_workers(setup, on_ready=workers_ready, log_level=log_level)
    else:
        serve_gateway(setup, on_ready=ready, log_level=log_level)


def _key_line(api_key: str | None, source: str) -> str:
    if api_key is None:
        return "none needed (--no-auth)"
    return "from WAVE_API_KEY" if source == "WAVE_API_KEY" else f"{api_key}  (stored in {source})"


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
    import uvloop

    from waveidp.gateway.request_ids import log_with_request_ids
    from waveidp.run.up import UpInfo, plan, up_with_workers
    from waveidp.run.up import up as run_up

    log_with_request_ids(log_level)

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
                    "routable": info.routable,
                }
            )
            return
        if info.routable:
            console.print("[bold green]Wave is up[/]", highlight=False)
        else:
            console.print(
                "[bold yellow]Wave is listening, no backend up yet[/] (see /ready)", highlight=False
            )
        console.print(f"  URL      {info.url}", highlight=False, soft_wrap=True)
        console.print("  models  ", shown(", ".join(info.models)), highlight=False, soft_wrap=True)
        if count > 1:
            console.print(f"  workers  {count} gateway processes", highlight=False)
        console.print(f"  API key  {info.api_key}  ({info.key_source})", highlight=False, soft_wrap=True)
        console.print(f"  logs     {info.logs}", highlight=False, soft_wrap=True)
        console.print("Press Ctrl-C to stop.", highlight=False)

    p = plan(host=host, port=port, config=config, workers=workers)
    count = p.gateway.config.workers
    if not json:
        err_console.print("starting the engine(s) and the gateway...", highlight=False)
    if count > 1:
        up_with_workers(p, on_ready=show, log_level=log_level)
    else:
        uvloop.run(run_up(p, on_ready=show, log_level=log_level))
    if not json:
        console.print("stopped", highlight=False)


def _print_line(obj: dict[str, object]) -> None:
    """One JSON document on one line, so a supervisor or test can read the ready line."""
    import sys

    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()
