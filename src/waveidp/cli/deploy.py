"""`wave deploy` and `wave deployments`: put a store model behind the gateway, swap it, roll it back.

On this machine the running `wave up` starts the engine and routes to it (through its admin API,
`/admin/deployments`, with the admin key); on a remote node of the fleet file, the node's engine
entry and compose file are written as `wave render` does and the commands to run there printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from waveidp.cli._app import app, console, err_console, print_json
from waveidp.errors import InputError, WaveError

deployments_app = typer.Typer(
    help="What `wave deploy` put on this machine's `wave up`: list, roll back, remove.", no_args_is_help=False
)
app.add_typer(deployments_app, name="deployments")

DEFAULT_GATEWAY = "http://127.0.0.1:4000"
GatewayOption = typer.Option(
    None, "--gateway", help=f"the running `wave up` (default: WAVE_GATEWAY_URL, else {DEFAULT_GATEWAY})"
)
JsonOption = typer.Option(False, "--json", help="print JSON for scripts")


class DeployFailed(WaveError):
    """The gateway could not do what was asked (the engine did not start, ...)."""

    exit_code = 1


@app.command("deploy")
def deploy(
    model: str = typer.Argument(..., help="a store model (wave models list); fit picks among its formats"),
    on: str = typer.Option(
        None, "--on", help="NODE or NODE/DEVICE (default: this machine, the device fit ranks first)"
    ),
    fleet_file: Path = typer.Option(None, "--fleet", "-f", help="wave.yaml, for --on a fleet node"),
    name: str = typer.Option(
        None, "--name", help="the model name clients send (default: MODEL without its format)"
    ),
    quant: str = typer.Option(None, "--quant", "-q", help="only this stored format (e.g. q8_0)"),
    slots: int = typer.Option(4, "--slots", min=1, max=1024, help="requests the engine runs at once (-np)"),
    context: int = typer.Option(4096, "--context", "-c", min=128, help="tokens per slot"),
    threads: int = typer.Option(None, "--threads", "-t", min=1, help="CPU threads (default: llama-server's)"),
    max_kld_p95: float = typer.Option(None, "--max-kld-p95", help="quality limit for fit's choice of format"),
    on_demand: bool = typer.Option(
        False, "--on-demand", help="start the engine only when a request needs it"
    ),
    idle_unload: str = typer.Option(
        None, "--idle-unload", help="stop the engine after this idle time (10m, 1h)"
    ),
    load_timeout: str = typer.Option(
        "30s", "--load-timeout", help="longest a request waits for a load (503 after)"
    ),
    gateway: str = GatewayOption,
    no_wait: bool = typer.Option(
        False, "--no-wait", help="return once the new engine serves, before the old drained"
    ),
    out: Path = typer.Option(Path("deploy"), "--out", "-o", help="remote nodes: where the rendered files go"),
    dry_run: bool = typer.Option(False, "--dry-run", help="say what would be deployed, change nothing"),
    as_json: bool = JsonOption,
) -> None:
    """Deploy a store model: device, format and engine flags from `wave fit` and sizing.

    A name already deployed is swapped without dropping a request: the new engine starts and
    passes its health check, takes the new requests, and the old one drains and stops."""
    from waveidp.deploy.planning import place, resolve_target
    from waveidp.deploy.records import NAME_PATTERN, parse_duration
    from waveidp.models import ModelStore

    timeout_s = parse_duration(load_timeout, where="--load-timeout")
    idle_s = parse_duration(idle_unload, where="--idle-unload") if idle_unload else None
    if max_kld_p95 is not None and max_kld_p95 < 0:
        raise InputError(f"--max-kld-p95 {max_kld_p95:g} is below 0", where="--max-kld-p95", fix="use >= 0")
    store = ModelStore(create=False)
    target = resolve_target(on, fleet_file=fleet_file)
    placed = place(
        store,
        model,
        target,
        quant=quant,
        slots=slots,
        context=context,
        threads=threads,
        max_kld_p95=max_kld_p95,
    )
    served = name or store.get(placed.revision.model).stem
    import re

    if not re.match(NAME_PATTERN, served):
        raise InputError(
            f"'{served}' cannot be a model name", where="--name", fix="use a-z, 0-9, '.', '_', ':', '-'"
        )
    rev, row = placed.revision, placed.row
    kld = f", KLD p95 {row.kld_p95:.4f}" if row.kld_p95 is not None else ""
    chosen = (
        f"{served}: {rev.model} on {target.node.name}/{rev.device} ({row.verdict}, "
        f"{row.decode_tokens_per_s:,.0f} tok/s decode predicted{kld}); flags {_flags(rev.flags)}"
    )
    if not target.local:
        from waveidp.cli.deploy_remote import deploy_remote

        deploy_remote(
            placed, served, store, slots=slots, context=context, out=out, dry_run=dry_run, as_json=as_json
        )
        return
    if dry_run:
        if as_json:
            print_json({"name": served, **rev.model_dump(mode="json"), "fit": row.model_dump(mode="json")})
        else:
            console.print(f"would deploy {chosen}", highlight=False, soft_wrap=True)
        return
    if not as_json:
        err_console.print(f"deploying {chosen}", highlight=False, soft_wrap=True)
    body = {
        "name": served,
        "model": rev.model,
        "device": rev.device,
        "flags": rev.flags,
        "on_demand": on_demand,
        "idle_unload_s": idle_s,
        "load_timeout_s": timeout_s,
        "wait": not no_wait,
    }
    with err_console.status("starting the engine" + ("" if no_wait else ", then draining the old one")):
        result = admin_call(gateway, "POST", "/admin/deployments", body)
    if as_json:
        print_json(result)
        return
    _report(result)


@deployments_app.callback(invoke_without_command=True)
def deployments(ctx: typer.Context, gateway: str = GatewayOption, as_json: bool = JsonOption) -> None:
    """List what is deployed on the running `wave up` (same as `wave deployments list`)."""
    if ctx.invoked_subcommand is None:
        _list(gateway, as_json)


@deployments_app.command("list")
def list_command(gateway: str = GatewayOption, as_json: bool = JsonOption) -> None:
    """What is deployed, each engine's state (loaded, loading, not loaded, draining)."""
    _list(gateway, as_json)


@deployments_app.command("rollback")
def rollback(
    name: str = typer.Argument(..., help="the deployment (its model name)"),
    gateway: str = GatewayOption,
    no_wait: bool = typer.Option(False, "--no-wait", help="return before the old engine drained"),
    as_json: bool = JsonOption,
) -> None:
    """Swap back to the revision before (a second rollback returns), without dropping a request."""
    path = f"/admin/deployments/{name}/rollback?wait={'false' if no_wait else 'true'}"
    with err_console.status(f"rolling back {name}"):
        result = admin_call(gateway, "POST", path)
    if as_json:
        print_json(result)
        return
    _report(result)


@deployments_app.command("rm")
def remove(
    name: str = typer.Argument(..., help="the deployment (its model name)"),
    gateway: str = GatewayOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop serving a deployment: no new request goes to it, its engine drains and stops."""
    with err_console.status(f"draining {name}"):
        result = admin_call(gateway, "DELETE", f"/admin/deployments/{name}")
    if as_json:
        print_json(result)
        return
    d = result["drain"]
    console.print(
        f"removed {name}: {d['backend']} drained {d['requests']} request(s) in {d['seconds']:.1f}s, stopped",
        highlight=False,
    )


def admin_call(gateway: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One request to the running gateway's admin API; its error answer as a one-line error."""
    import httpx

    from waveidp.run.api_key import admin_key_path, stored_admin_key

    url = (gateway or os.environ.get("WAVE_GATEWAY_URL") or DEFAULT_GATEWAY).rstrip("/").removesuffix("/v1")
    key = stored_admin_key()
    if key is None:
        raise InputError(
            "no admin key: WAVE_ADMIN_KEY (or _FILE, _VAULT) is not set and "
            f"{admin_key_path()} does not exist",
            fix="`wave up` writes that file when it starts; or set WAVE_ADMIN_KEY to the gateway's admin key",
        )
    try:
        r = httpx.request(
            method,
            url + path,
            json=body,
            headers={"authorization": f"Bearer {key.reveal()}"},
            timeout=httpx.Timeout(10.0, read=None),
        )
    except httpx.HTTPError as exc:
        raise InputError(
            f"cannot reach the gateway at {url}: {exc}", fix="start `wave up`, or give --gateway URL"
        ) from None
    if r.status_code == 404:
        try:
            code = r.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = None  # the admin app's own 404: no such route
        if code in (None, "unknown_route"):
            raise InputError(
                f"the gateway at {url} has no deployments API",
                fix="wave deploy needs `wave up` in one process (not --workers, not wave serve)",
            )
    if r.is_success:
        return r.json()
    try:
        message = r.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = r.text[:300]
    if r.status_code in (401, 403):
        raise InputError(f"the gateway refused the admin key: {message}", fix="check WAVE_ADMIN_KEY")
    cls = InputError if r.status_code < 500 else DeployFailed
    raise cls(f"{method} {path}: HTTP {r.status_code}: {message}")


def _flags(flags: dict[str, Any]) -> str:
    return " ".join(f"{k} {v}" for k, v in flags.items())


def _report(result: dict[str, Any]) -> None:
    e = result["engine"]
    rev = result["revision"]
    how = "deployed" if result["created"] else "swapped"
    ready = (
        f"healthy in {result['started_s']:.1f}s"
        if result["started_s"] is not None
        else "loads on the first request"
    )
    console.print(
        f"[green]{how}[/] {result['name']}: {rev['model']} as {e['backend']} at {e['url']} ({ready})",
        highlight=False,
        soft_wrap=True,
    )
    if result.get("replaced"):
        d = result.get("drain")
        if d and d["done"]:
            cut = f", {d['cut']} cut at the drain timeout" if d["cut"] else ""
            console.print(
                f"  {result['replaced']} drained {d['requests']} request(s) in {d['seconds']:.1f}s, "
                f"stopped{cut}",
                highlight=False,
            )
        else:
            console.print(
                f"  {result['replaced']} is draining (stops when its requests end)", highlight=False
            )
    if result.get("previous"):
        console.print(
            f"  roll back: wave deployments rollback {result['name']} (to {result['previous']['model']})",
            highlight=False,
        )


def _list(gateway: str | None, as_json: bool) -> None:
    result = admin_call(gateway, "GET", "/admin/deployments")
    rows = result["data"]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("nothing deployed (wave deploy MODEL)")
        return
    from rich.table import Table

    t = Table(title="deployments", title_justify="left")
    for col in ("name", "model", "device", "engine", "state", "in flight", "load", "previous"):
        t.add_column(col)
    for d in rows:
        e, r = d["engine"], d["residence"]
        load = "on demand" if r["on_demand"] else "always"
        if r["idle_unload_s"]:
            load += f", unload after {r['idle_unload_s']:g}s idle"
        state = e["state"] + (f"; draining {d['draining']['backend']}" if d.get("draining") else "")
        t.add_row(
            d["name"],
            d["revision"]["model"],
            d["revision"]["device"] or "-",
            f"{e['backend']} {e['url']}",
            state,
            str(e["inflight"]),
            load,
            d["previous"]["model"] if d.get("previous") else "-",
        )
    console.print(t)
