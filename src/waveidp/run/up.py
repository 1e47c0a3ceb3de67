"""`wave up`: the embedded engine (or a fleet file's local parts) behind the gateway, in one command.

Without a fleet file: one real `llama-server` serving SmolLM2-135M-Instruct (chat, completions and
embeddings from one process) as a supervised child, and the gateway on 127.0.0.1 in front of it,
reached through the same llama.cpp adapter as any remote llama.cpp server. With a fleet file:
every `embedded` backend on this machine is started the same way, every other backend is
connected to over HTTP. SIGINT/SIGTERM stop the gateway first, then the children.
With --workers N (or gateway.workers), the gateway runs as N worker processes
(`gateway.workers`, as `wave serve`) and the engines are supervised in a process of their own.
What `wave deploy` deployed (`WAVE_HOME/deployments.json`) comes back: in one process through the
deployer (`run.deployer`, which also serves `/admin/deployments`), with workers as engines that
always run (deploying, swapping and loading on demand need the one process).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from waveidp.deploy.planning import is_local
from waveidp.engines import adapter
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import EMBEDDED_MODEL_NAME, embedded_model_path, llama_tool
from waveidp.fleet.models import Backend, Fleet, RoutingConfig
from waveidp.gateway import backends_from_fleet
from waveidp.gateway.backends import BackendState
from waveidp.gateway.build import telemetry_from_fleet
from waveidp.gateway.compose import (
    GatewaySetup,
    body_limit_setting,
    compose,
    security_options,
    serve_workers,
)
from waveidp.gateway.server import serve_until_stopped, stop_on_signals
from waveidp.gateway.telemetry import NodeTelemetry
from waveidp.gateway.workers import listen_socket
from waveidp.loopback import free_port
from waveidp.paths import wave_home
from waveidp.run.api_key import resolve_admin_key, resolve_api_key
from waveidp.run.deploy_api import deployments_router
from waveidp.run.deployer import Deployer, server_spec
from waveidp.run.keeper import EngineKeeper
from waveidp.run.supervisor import Child, start_children
from waveidp.security.gateway_security import prepare_workers

log = logging.getLogger("waveidp.run")
EMBEDDED_SLOTS = 4


@dataclass
class UpInfo:
    url: str
    models: list[str]
    api_key: str
    key_source: str
    logs: Path
    children: dict[str, int | None]  # engine name: its process id
    routable: bool = True  # a backend takes requests (a fleet's remote ones may all be down)
    console_url: str | None = None
    admin_key_source: str | None = None  # where the admin key (console, `wave deploy`) is kept


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


def _local_node(fleet: Fleet) -> str:
    """The node this machine is, for its telemetry: the first local one of the file, else the
    host's name (its own devices are read all the same)."""
    return next((n.name for n in fleet.nodes if is_local(fleet, n)), socket.gethostname())


def fleet_children(fleet: Fleet, logs: Path) -> list[Child]:
    """A llama-server child for each `embedded` backend on this machine."""
    from urllib.parse import urlparse

    children = []
    for node, b in fleet.backends():
        if b.engine != "embedded" or not is_local(fleet, node):
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
    """What `wave up` runs: the engine processes it starts and the gateway in front of them."""

    children: list[Child]
    gateway: GatewaySetup
    key: str  # the bootstrap key it prints
    key_source: str
    logs: Path
    deployer: Deployer
    admin_key_source: str | None = None
    console: bool = False  # the web console is mounted

    def info(self, models: list[str], pids: dict[str, int | None], routable: bool = True) -> UpInfo:
        cfg = self.gateway.config
        base = f"http://{cfg.host}:{cfg.port}"
        return UpInfo(
            base + "/v1",
            models,
            self.key,
            self.key_source,
            self.logs,
            pids,
            routable,
            base + "/console" if self.console else None,
            self.admin_key_source,
        )


def plan(*, config: Path | None, flags: dict[str, object]) -> Plan:
    """The engines and the gateway; the gateway's configuration is `flags` > WAVE_* > the fleet
    file's gateway: section > defaults (`waveidp.fleet.settings`); the web console at /console
    unless `console` is off."""
    import os

    from waveidp.fleet.settings import resolve

    logs = wave_home() / "logs"
    key, key_source = resolve_api_key()
    fleet = None
    if config is not None:
        from waveidp import fleet as fleet_mod

        fleet = fleet_mod.load(config)
    file_config = fleet.gateway if fleet else None
    cfg = resolve(file_config, os.environ, flags, file_name=str(config))
    admin_key, admin_source = resolve_admin_key(cfg)
    # keys from `wave keys`, limits, audit log and /admin/keys next to the printed bootstrap key
    security = security_options(cfg, key, admin_key)
    limit = body_limit_setting(file_config, config, os.environ)
    deployer = Deployer(logs, drain_timeout_s=cfg.total_timeout_s)
    if fleet is None:
        children, backends = [], []
        if EMBEDDED_MODEL_NAME not in {d.name for d in deployer.recorded()}:  # else deployed over
            child, backend = default_embedded(logs)
            children, backends = [child], [backend]
            deployer.adoptable[EMBEDDED_MODEL_NAME] = (backend, child)
            backend.node = socket.gethostname()  # its GPUs are this machine's: all of them
        local = [NodeTelemetry(socket.gethostname(), local=True)]
        setup = GatewaySetup(
            backends, cfg, RoutingConfig(), security, body_limit_setting=limit, telemetry=local
        )
    else:
        children = fleet_children(fleet, logs)
        backends = backends_from_fleet(fleet)
        by_name = {b.name: b for b in backends}
        for c in children:
            link(c, by_name[c.name])
        # this machine's own devices from a collector in the gateway's process, the others' scraped
        telemetry = telemetry_from_fleet(fleet, local=_local_node(fleet))
        setup = GatewaySetup(
            backends, cfg, fleet.routing, security, body_limit_setting=limit, telemetry=telemetry
        )
    if cfg.workers == 1:
        setup.admin_routers.append(deployments_router(deployer, admin_key))
    p = Plan(children, setup, key, key_source, logs, deployer, admin_source)
    if cfg.console:
        from waveidp.console import console_mount, console_options

        options = console_options(
            cfg, admin_key=admin_key, bootstrap_key=key if cfg.auth else None, fleet=fleet
        )
        if options is not None:
            setup.mounts.append(console_mount(options))
            p.console = True
    return p


def _pids(children: list[Child]) -> dict[str, int | None]:
    return {c.name: c.proc.pid if c.proc else None for c in children}


async def up(p: Plan, *, on_ready: Callable[[UpInfo], None], log_level: str = "warning") -> None:
    """One gateway process in this process's event loop, the engines supervised next to it (their
    death takes their backend out of rotation at once)."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    cfg = p.gateway.config
    started: list[Child] = []
    sock = listen_socket(cfg.host, cfg.port, reuse_port=False)  # a port in use fails before any engine starts
    with compose(p.gateway) as app:
        try:
            if not await start_children(p.children, stop, started):
                return
            for problem in await p.deployer.restore(app.gateway):
                log.warning("%s", problem)
            await serve_until_stopped(
                app,
                cfg.host,
                cfg.port,
                log_level=log_level,
                on_ready=lambda: on_ready(
                    p.info(app.gateway.models(), _pids(p.children), app.gateway.ready())
                ),
                stop=stop,
                sock=sock,
            )
        finally:
            await p.deployer.close()
            await asyncio.gather(*(c.stop() for c in started))


def recorded_engines(p: Plan) -> tuple[list[Child], list[BackendState]]:
    """The recorded deployments as engines that always run (with gateway workers, which the
    deployer cannot reach: each worker only routes)."""
    from waveidp.models import ModelStore

    store = ModelStore(create=False)
    children: list[Child] = []
    backends: list[BackendState] = []
    for d in p.deployer.recorded():
        if not store.has(d.revision.model):
            log.warning("deployment %s: %s is no longer in the store; skipped", d.name, d.revision.model)
            continue
        spec = server_spec(d.name, d.revision, store.get(d.revision.model).weights_path, free_port())
        backend = BackendState(
            name=f"{d.name}@1",
            root=spec.url,
            adapter=adapter("llamacpp"),
            models={d.name},
            max_concurrency=spec.parallel,
        )
        children.append(link(embedded_child(spec, backend.name, p.logs), backend))
        backends.append(backend)
    return children, backends


def up_with_workers(p: Plan, *, on_ready: Callable[[UpInfo], None], log_level: str = "warning") -> None:
    """`wave up --workers N`: the engines in one process of their own (`run.keeper`), then N gateway
    workers forked by the same supervisor as `wave serve --workers N`; returns once all have stopped."""
    cfg = p.gateway.config
    prepare_workers(p.gateway.security, host=cfg.host, workers=cfg.workers)  # before any engine starts
    children, backends = recorded_engines(p)
    p.children += children
    p.gateway.backends += backends
    keeper = EngineKeeper(p.children)
    try:
        pids = keeper.start()
        if pids is None:
            return  # stopped while the engines started
        models = sorted({m for b in p.gateway.backends for m in b.models})
        serve_workers(
            p.gateway,
            on_ready=lambda routable: on_ready(p.info(models, pids, routable)),
            log_level=log_level,
            needed=keeper.gone,
        )
    finally:
        keeper.stop()
