"""`wave up`: the embedded engine (or a fleet file's local parts) behind the gateway, in one command.

Without a fleet file: one real `llama-server` serving SmolLM2-135M-Instruct (chat, completions and
embeddings from one process) as a supervised child, and the gateway on 127.0.0.1 in front of it,
reached through the same llama.cpp adapter as any remote llama.cpp server. With a fleet file:
every `embedded` backend on this machine is started the same way, every other backend is
connected to over HTTP. SIGINT/SIGTERM stop the gateway first, then the children.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from waveidp.engines import adapter
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import EMBEDDED_MODEL_NAME, embedded_model_path, llama_tool, wave_home
from waveidp.fleet._models import Backend, Fleet, GatewayConfig, Node
from waveidp.gateway import Gateway, backends_from_fleet, create_app
from waveidp.gateway.backends import BackendState
from waveidp.gateway.server import serve_until_stopped, stop_on_signals
from waveidp.run.api_key import resolve_api_key
from waveidp.run.supervisor import Child
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
    children: list[Child]


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


async def up(
    *,
    host: str,
    port: int,
    config: Path | None,
    on_ready: Callable[[UpInfo], None],
    log_level: str = "warning",
) -> None:
    key, key_source = resolve_api_key()
    # keys from `wave keys`, limits, audit log and /admin/keys next to the printed bootstrap key
    security = security_from_cli(host=host, bootstrap_key=key)
    logs = wave_home() / "logs"
    stop = asyncio.Event()
    stop_on_signals(stop)
    gateway_config = GatewayConfig(host=host, port=port)
    if config is None:
        child, backend = default_embedded(logs)
        children, backends, routing = [child], [backend], None
    else:
        from waveidp import fleet as fleet_mod

        fleet = fleet_mod.load(config)
        children = fleet_children(fleet, logs)
        backends, routing = backends_from_fleet(fleet), fleet.routing
        by_name = {b.name: b for b in backends}
        for c in children:
            link(c, by_name[c.name])
        gateway_config = fleet.gateway.model_copy(update={"host": host, "port": port})
        if gateway_config.workers > 1:
            # the engines' supervision is linked to the one gateway process's backend states
            logging.getLogger("waveidp.run").warning(
                "gateway.workers=%d is for `wave serve`; `wave up` runs one gateway process",
                gateway_config.workers,
            )
    started: list[Child] = []
    try:
        for c in children:
            starting = asyncio.create_task(c.start())
            waiting = asyncio.create_task(stop.wait())
            await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            started.append(c)
            if stop.is_set():
                starting.cancel()
                return
            starting.result()
        gw = Gateway(backends, security.guard, config=gateway_config, routing=routing)

        async def ready() -> None:
            on_ready(UpInfo(f"http://{host}:{port}/v1", gw.models(), key, key_source, logs, children))

        app = create_app(gw)
        security.mount(app)
        await serve_until_stopped(app, host, port, log_level=log_level, on_ready=ready, stop=stop)
    finally:
        await asyncio.gather(*(c.stop() for c in started))
        security.close()
