"""`wave up`: the embedded engine (or a fleet file's local parts) behind the gateway, in one command.

Without a fleet file: one real `llama-server` serving SmolLM2-135M-Instruct (chat, completions and
embeddings from one process) as a supervised child, and the gateway on 127.0.0.1 in front of it,
reached through the same llama.cpp adapter as any remote llama.cpp server. With a fleet file:
every `embedded` backend on this machine is started the same way, every other backend is
connected to over HTTP. SIGINT/SIGTERM stop the gateway first, then the children.
With --workers N (or gateway.workers), the gateway runs as N worker processes
(`gateway.workers`, as `wave serve`) and the engines are supervised in a process of their own.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from waveidp.engines import adapter
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import EMBEDDED_MODEL_NAME, embedded_model_path, llama_tool
from waveidp.fleet.models import Backend, Fleet, GatewayConfig, Node, RoutingConfig
from waveidp.gateway import Gateway, backends_from_fleet, create_app
from waveidp.gateway.backends import BackendState
from waveidp.gateway.server import serve_until_stopped, stop_on_signals
from waveidp.paths import wave_home
from waveidp.run.api_key import resolve_api_key
from waveidp.run.supervisor import Child, start_children
from waveidp.security.gateway_security import security_from_cli

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
EMBEDDED_SLOTS = 4


@dataclass
class UpInfo:
    url: str
    models: list[str]
    api_key: str
    key_source: str
    logs: Path
    children: dict[str, int | None]  # engine name: its process id


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_child(spec: LlamaServerSpec, name: str, logs: Path) -> Child:
    return Child(
        name=name, command=spec.command(), health_url=spec.url + "/health", log_path=logs / f"{name}.log"
    )


def default_embedded(logs: Path) -> tuple[Child, BackendState]:
    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=embedded_model_path(),
        port=free_port(),
        alias=EMBEDDED_MODEL_NAME,
        parallel=EMBEDDED_SLOTS,
        context=8192,
    )
    backend = BackendState(
        name="embedded",
        root=spec.url,
        adapter=adapter("embedded"),
        models={spec.alias},
        max_concurrency=EMBEDDED_SLOTS,
    )
    return link(embedded_child(spec, "embedded", logs), backend), backend


def link(child: Child, backend: BackendState) -> Child:
    """Let the supervisor take the backend out of rotation the moment its process dies."""
    child.on_down = backend.mark_down
    child.on_up = backend.mark_up
    return child


def _is_local(fleet: Fleet, node: Node) -> bool:
    return node.address in LOCAL_HOSTS or (fleet.gateway.node is not None and node.name == fleet.gateway.node)


def fleet_children(fleet: Fleet, logs: Path) -> list[Child]:
    """A llama-server child for each `embedded` backend on this machine."""
    from urllib.parse import urlparse

    children = []
    for node, b in fleet.backends():
        if b.engine != "embedded" or not _is_local(fleet, node):
            continue
        url = urlparse(b.url)
        served = b.served()
        model_file = _model_file(b)
        spec = LlamaServerSpec(
            binary=llama_tool("llama-server"),
            model=model_file,
            port=url.port or 80,
            host=url.hostname or "127.0.0.1",
            alias=served[0].name if served else EMBEDDED_MODEL_NAME,
            parallel=b.max_concurrency or EMBEDDED_SLOTS,
        )
        children.append(embedded_child(spec, b.name, logs))
    return children


def _model_file(b: Backend) -> Path:
    for m in b.served():
        if m.model and m.model.endswith(".gguf"):
            return Path(m.model).expanduser()
    return embedded_model_path()


@dataclass
class Plan:
    """What `wave up` runs: the engine processes it starts and the backends the gateway routes to."""

    children: list[Child]
    backends: list[BackendState]
    routing: RoutingConfig | None
    gateway: GatewayConfig


def plan(*, host: str, port: int, config: Path | None, logs: Path) -> Plan:
    if config is None:
        child, backend = default_embedded(logs)
        return Plan([child], [backend], None, GatewayConfig(host=host, port=port))
    from waveidp import fleet as fleet_mod

    fleet = fleet_mod.load(config)
    children = fleet_children(fleet, logs)
    backends = backends_from_fleet(fleet)
    by_name = {b.name: b for b in backends}
    for c in children:
        link(c, by_name[c.name])
    return Plan(
        children, backends, fleet.routing, fleet.gateway.model_copy(update={"host": host, "port": port})
    )


async def up(
    *,
    host: str,
    port: int,
    config: Path | None,
    on_ready: Callable[[UpInfo], None],
    log_level: str = "warning",
) -> None:
    """One gateway process in this process's event loop, the engines supervised next to it (their
    death takes their backend out of rotation at once)."""
    key, key_source = resolve_api_key()
    # keys from `wave keys`, limits, audit log and /admin/keys next to the printed bootstrap key
    security = security_from_cli(host=host, bootstrap_key=key)
    logs = wave_home() / "logs"
    stop = asyncio.Event()
    stop_on_signals(stop)
    p = plan(host=host, port=port, config=config, logs=logs)
    started: list[Child] = []
    try:
        if not await start_children(p.children, stop, started):
            return
        gw = Gateway(p.backends, security.guard, config=p.gateway, routing=p.routing)

        async def ready() -> None:
            pids = {c.name: c.proc.pid if c.proc else None for c in p.children}
            on_ready(UpInfo(f"http://{host}:{port}/v1", gw.models(), key, key_source, logs, pids))

        app = create_app(gw)
        security.mount(app)
        await serve_until_stopped(app, host, port, log_level=log_level, on_ready=ready, stop=stop)
    finally:
        await asyncio.gather(*(c.stop() for c in started))
        security.close()


def workers_wanted(config: Path | None, workers: int | None) -> int:
    """--workers, else the fleet file's gateway.workers, else 1."""
    if workers is not None:
        return workers
    if config is None:
        return 1
    from waveidp import fleet as fleet_mod

    return fleet_mod.load(config).gateway.workers


def up_with_workers(
    *,
    host: str,
    port: int,
    config: Path | None,
    workers: int,
    on_ready: Callable[[UpInfo], None],
    log_level: str = "warning",
) -> bool:
    """`wave up --workers N`: the engines in one process of their own (`run.keeper`), then N gateway
    workers forked by the same supervisor as `wave serve --workers N`. Returns True in the parent
    once everything has stopped, False in a worker once it has stopped serving."""
    from waveidp.gateway.server import run
    from waveidp.gateway.workers import Supervisor, become_worker, listen_socket, say_ready
    from waveidp.run.keeper import EngineKeeper
    from waveidp.security.gateway_security import check_workers

    key, key_source = resolve_api_key()
    check_workers(workers=workers, redis_url=None, auth=True)
    logs = wave_home() / "logs"
    p = plan(host=host, port=port, config=config, logs=logs)
    gateway_config = p.gateway.model_copy(update={"workers": workers})
    keeper = EngineKeeper(p.children)
    worker: int | None = None
    try:
        pids = keeper.start()
        if pids is None:
            return True  # stopped while the engines started
        models = sorted({m for b in p.backends for m in b.models})
        url = f"http://{host}:{port}/v1"
        worker = Supervisor(workers, host, port, needed=keeper.gone).run(
            lambda: on_ready(UpInfo(url, models, key, key_source, logs, pids))
        )
        if worker is None:
            return True
    finally:
        if worker is None:
            keeper.stop()
    become_worker()
    security = security_from_cli(host=host, bootstrap_key=key, workers=workers)
    gw = Gateway(p.backends, security.guard, config=gateway_config, routing=p.routing)

    async def ready() -> None:
        say_ready()

    app = create_app(gw)
    security.mount(app)
    try:
        run(app, host, port, log_level=log_level, on_ready=ready, sock=listen_socket(host, port))
    finally:
        security.close()
    return False
