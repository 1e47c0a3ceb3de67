"""`wave serve` (the gateway over existing backends) and `wave up` (the embedded default, or a fleet
file's local parts, behind the gateway)."""

from __future__ import annotations

from pathlib import Path

import typer

from waveidp.cli._app import app, console, err_console, shown


def _settings_help() -> str:
    """`wave serve --help`'s list of the WAVE_* variables, from the configuration model itself."""
    from waveidp.fleet.settings import variables

    rows = "\n\n".join(f"{name}: {what}" for name, what in variables().items())
    return (
        "Every setting comes from a flag, a WAVE_* variable or the fleet file's gateway: section, in "
        "that order of precedence, else its default (docs/configuration.md):\n\n" + rows
    )


@app.command(epilog=_settings_help())
def serve(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="fleet file (wave.yaml) with the backends [env: WAVE_CONFIG]"
    ),
    upstream: list[str] = typer.Option(
        [], "--upstream", "-u", help="OpenAI-compatible base URL; repeatable; models found via /v1/models"
    ),
    engine: str | None = typer.Option(
        None, help="engine kind of --upstream URLs (default auto: detected from /metrics)"
    ),
    upstream_key_env: str | None = typer.Option(None, help="environment variable with the --upstream key"),
    host: str | None = typer.Option(None, help="listen address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, help="listen port (default 4000)"),
    policy: str | None = typer.Option(
        None, help="routing policy for every model: predicted-latency, least-outstanding, round-robin"
    ),
    max_body_bytes: int | None = typer.Option(None, help="largest request body accepted (default 32 MiB)"),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="browser origin allowed to call the gateway (CORS); repeatable; '*' for any"
    ),
    log_level: str | None = typer.Option(None, help="debug shows each routing decision (default warning)"),
    no_auth: bool = typer.Option(False, "--no-auth", help="no API keys at all (refused off 127.0.0.1)"),
    redis: str | None = typer.Option(None, "--redis", help="Redis URL: rate limits shared by replicas"),
    database: str | None = typer.Option(
        None, "--database", help="PostgreSQL URL: keys and the audit log shared by replicas"
    ),
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
        None, "--workers", min=1, max=64, help="gateway processes on the port (default 1)"
    ),
    no_console: bool = typer.Option(False, "--no-console", help="do not serve the web console at /console"),
    console_bench_dir: Path | None = typer.Option(
        None, "--console-bench-dir", help="wave bench result folders the console lists (WAVE_HOME/bench)"
    ),
    oidc_client_id: str | None = typer.Option(
        None, help="console sign-in through the --oidc-issuer (authorization code + PKCE) as this client"
    ),
    oidc_admin_group: str | None = typer.Option(
        None, help="OIDC group (claim 'groups') whose members are console admins (default wave-admins)"
    ),
) -> None:
    """Serve the OpenAI-compatible gateway in front of the backends of --config and/or --upstream.

    API keys (`wave keys`), limits, the audit log (`wave audit`) and `/admin/keys` are on; see
    docs/security.md. With --workers N, N processes share the port (docs/gateway.md, Workers)."""
    import os

    from waveidp.errors import InputError
    from waveidp.fleet.models import RoutingConfig
    from waveidp.fleet.settings import resolve
    from waveidp.gateway import backends_from_fleet, backends_from_urls
    from waveidp.gateway.build import telemetry_from_fleet
    from waveidp.gateway.compose import GatewaySetup, body_limit_setting, security_options, serve_workers
    from waveidp.gateway.compose import serve as serve_gateway
    from waveidp.gateway.routing import make_policy
    from waveidp.gateway.state import Gateway
    from waveidp.run.api_key import resolve_admin_key, resolve_api_key
    from waveidp.security.gateway_security import prepare_workers
    from waveidp.security.transport import check_bind, tls_settings

    flags = {
        "upstreams": upstream,
        "upstream_engine": engine,
        "upstream_key_env": upstream_key_env,
        "host": host,
        "port": port,
        "policy": policy,
        "max_body_bytes": max_body_bytes,
        "log_level": log_level,
        "auth": False if no_auth else None,
        "redis_url": redis,
        "database_url": database,
        "tls_cert": str(tls_cert) if tls_cert else None,
        "tls_key": str(tls_key) if tls_key else None,
        "oidc_issuer": oidc_issuer,
        "oidc_audience": oidc_audience,
        "oidc_jwks_url": oidc_jwks_url,
        "log_prompts": True if log_prompts else None,
        "status_auth": True if status_auth else None,
        "workers": workers,
        "cors_origins": cors_origin,
        "console": False if no_console else None,
        "console_bench_dir": str(console_bench_dir) if console_bench_dir else None,
        "oidc_client_id": oidc_client_id,
        "oidc_admin_group": oidc_admin_group,
    }
    if policy is not None:
        make_policy(policy)  # unknown names fail here with the valid ones listed
    config = config or (Path(os.environ["WAVE_CONFIG"]) if os.environ.get("WAVE_CONFIG") else None)
    backends = []
    file_config, routing, f = None, RoutingConfig(), None
    if config is not None:
        from waveidp import fleet

        f = fleet.load(config)
        backends += backends_from_fleet(f)
        file_config, routing = f.gateway, f.routing
    cfg = resolve(file_config, os.environ, flags, file_name=str(config or "the fleet file"))
    if cfg.upstreams:
        key = os.environ.get(cfg.upstream_key_env) if cfg.upstream_key_env else None
        backends += backends_from_urls(cfg.upstreams, cfg.upstream_engine, key)
    if not backends and config is None:
        raise InputError(
            "no backends given",
            where="wave serve",
            fix="pass --upstream http://host:port (repeatable) or --config wave.yaml (or WAVE_CONFIG)",
        )
    if cfg.policy is not None:
        routing = routing.with_policy(cfg.policy)
    # --no-auth: no key is needed, so none is made, checked or printed
    api_key, source = resolve_api_key() if cfg.auth else (None, "--no-auth")
    check_bind(cfg.host, auth_enabled=cfg.auth)  # before the console's own check: the graver refusal
    admin_key, _ = resolve_admin_key(cfg)
    setup = GatewaySetup(
        backends,
        cfg,
        routing,
        security_options(cfg, api_key, admin_key),
        tls_settings(cfg.tls_cert, cfg.tls_key),
        body_limit_setting=body_limit_setting(
            file_config, config, os.environ, flag=max_body_bytes is not None
        ),
        telemetry=telemetry_from_fleet(f) if f is not None else [],
    )
    base = f"{'https' if setup.tls else 'http'}://{cfg.host}:{cfg.port}"
    url = base + "/v1"
    key_line = _key_line(api_key, source)
    console_url = ""
    if cfg.console:
        from waveidp.console import console_mount, console_options

        options = console_options(
            cfg, admin_key=admin_key, bootstrap_key=api_key if cfg.auth else None, fleet=f
        )
        if options is not None:
            setup.mounts.append(console_mount(options))
            console_url = f"  console: {base}/console"

    # One line whatever the terminal's width, also when written to a file (Rich wraps at 80
    # columns there): supervisors and scripts read it.
    def ready(gw: Gateway) -> None:
        if not gw.ready():
            say_not_routable(gw)
            return
        console.print(
            f"[bold green]gateway ready[/] {url}  models:",
            shown(", ".join(gw.models()) or "(discovering)"),  # names the upstreams chose
            f" API key: {key_line}{console_url}",
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
            f")  requests wait with 503 until one is; API key: {key_line}{console_url}",
            sep="",
            highlight=False,
            soft_wrap=True,
        )

    def workers_ready(routable: bool) -> None:
        if not routable:
            say_not_routable(None)
            return
        console.print(
            f"[bold green]gateway ready[/] {url}  {cfg.workers} workers  API key: {key_line}{console_url}",
            highlight=False,
            soft_wrap=True,
        )

    if cfg.workers > 1:
        prepare_workers(setup.security, host=cfg.host, workers=cfg.workers)
        serve_workers(setup, on_ready=workers_ready, log_level=cfg.log_level)
    else:
        serve_gateway(setup, on_ready=ready, log_level=cfg.log_level)


def _key_line(api_key: str | None, source: str) -> str:
    if api_key is None:
        return "none needed (--no-auth)"
    return "from WAVE_API_KEY" if source == "WAVE_API_KEY" else f"{api_key}  (stored in {source})"


@app.command()
def up(
    config: Path | None = typer.Option(
        None, "--config", "-c", help="fleet file: start its local embedded engines, connect the rest"
    ),
    port: int | None = typer.Option(None, help="gateway port (default 4000)"),
    host: str | None = typer.Option(None, help="gateway listen address (default 127.0.0.1)"),
    json: bool = typer.Option(False, "--json", help="print the ready line as JSON"),
    log_level: str | None = typer.Option(None, help="default warning"),
    workers: int | None = typer.Option(
        None, "--workers", min=1, max=64, help="gateway processes on the port (default 1)"
    ),
    no_console: bool = typer.Option(False, "--no-console", help="do not serve the web console at /console"),
) -> None:
    """Start the embedded engine (llama-server, SmolLM2-135M-Instruct) behind the gateway; Ctrl-C stops it.

    The gateway's other settings come from WAVE_* variables and the fleet file (see `wave serve
    --help`). With --workers N, N gateway processes share the port (docs/gateway.md, Workers)."""
    import os

    import uvloop

    from waveidp.gateway.request_ids import log_with_request_ids
    from waveidp.run.up import UpInfo, plan, up_with_workers
    from waveidp.run.up import up as run_up

    config = config or (Path(os.environ["WAVE_CONFIG"]) if os.environ.get("WAVE_CONFIG") else None)
    flags = {"host": host, "port": port, "workers": workers, "log_level": log_level}
    p = plan(config=config, flags={**flags, "console": False if no_console else None})
    level = p.gateway.config.log_level
    log_with_request_ids(level)

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
                    "console_url": info.console_url,
                    "admin_key_source": info.admin_key_source,
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
        if info.console_url:
            console.print(
                f"  Console  {info.console_url}  (sign in with the admin key: {info.admin_key_source})",
                highlight=False,
                soft_wrap=True,
            )
        console.print("  models  ", shown(", ".join(info.models)), highlight=False, soft_wrap=True)
        if count > 1:
            console.print(f"  workers  {count} gateway processes", highlight=False)
        console.print(f"  API key  {info.api_key}  ({info.key_source})", highlight=False, soft_wrap=True)
        console.print(f"  logs     {info.logs}", highlight=False, soft_wrap=True)
        console.print("Press Ctrl-C to stop.", highlight=False)

    count = p.gateway.config.workers
    if not json:
        err_console.print("starting the engine(s) and the gateway...", highlight=False)
    if count > 1:
        up_with_workers(p, on_ready=show, log_level=level)
    else:
        uvloop.run(run_up(p, on_ready=show, log_level=level))
    if not json:
        console.print("stopped", highlight=False)


def _print_line(obj: dict[str, object]) -> None:
    """One JSON document on one line, so a supervisor or test can read the ready line."""
    import sys

    import orjson

    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.flush()
