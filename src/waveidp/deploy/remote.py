"""`wave deploy MODEL --on NODE/DEVICE` for a node that is not this machine.

Wave cannot start a process there, so it writes what `wave render` would for that node and says
what to run: the deployment becomes a llama.cpp backend of the node in the fleet file (the model
by its store name, the device, the slots and context; `wave render` sizes the flags from them),
the node's files (docker-compose.yml with the engine, its README) are rendered from the updated
fleet, and the commands copy the model's store folder into the node's `models_dir`, the files
onto the node, and start (or recreate) the engine there. The gateway reaches the backend through
the fleet file (`wave serve --config` / `wave up --config`).

A swap on a remote node is compose's: `docker compose up -d` recreates the engine's container, so
requests in flight there fail. Drain-free swaps are those of the local `wave up`.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from waveidp.deploy.planning import Placement
from waveidp.errors import InputError

if TYPE_CHECKING:
    from waveidp.fleet.models import Backend, Fleet, Node
    from waveidp.models import StoredModel

FIRST_PORT = 8080


@dataclass(frozen=True)
class RemoteDeployment:
    fleet_text: str  # the fleet file with the node's backend added or replaced
    backend: Backend
    node: Node
    commands: list[tuple[str, str]]  # (where to run it, the command), once the files are rendered


def backend_name(served: str) -> str:
    return re.sub(r"[^a-z0-9_.-]", "-", served)


def plan_remote(
    placed: Placement, served: str, stored: StoredModel, *, slots: int, context: int, out: Path
) -> RemoteDeployment:
    """The fleet file's new text and the commands for `placed` (`wave render` then writes the
    node's files into `out` from that text). `context`: tokens per slot."""
    from waveidp import fleet as fleet_mod
    from waveidp.fleet.models import Backend, ServedModel

    target = placed.target
    assert target.fleet is not None and target.fleet_file is not None
    node = target.node
    name = backend_name(served)
    existing = {b.name: b for b in node.backends}
    port = _port(node, existing.get(name))
    device_ids = [target.device] if target.device else _device_ids(node, placed.revision.device or "")
    backend = Backend(
        name=name,
        engine="llamacpp",
        url=f"http://{node.address}:{port}",
        models=[ServedModel(name=served, model=stored.name, quant=stored.manifest.quant, context=context)],
        devices=device_ids,
        max_concurrency=slots,
    )
    backends = [b for b in node.backends if b.name != name] + [backend]
    others = [b.name for n, b in target.fleet.backends() if n.name != node.name and b.name == name]
    if others:
        raise InputError(
            f"backend name '{name}' is taken on another node", where=str(target.fleet_file), fix="use --name"
        )
    new_node = node.model_copy(update={"backends": backends})
    text = target.fleet_file.read_text(encoding="utf-8")
    new_text = fleet_mod.merge_node_text(text, str(target.fleet_file), new_node, only={"backends"})
    fleet: Fleet = fleet_mod.loads(new_text, str(target.fleet_file))
    return RemoteDeployment(
        new_text, backend, fleet.node(node.name), _commands(node, backend, stored, out, target.fleet_file)
    )


def _port(node: Node, current: Backend | None) -> int:
    from urllib.parse import urlparse

    if current is not None:
        return current.port or urlparse(current.url).port or FIRST_PORT
    taken = {b.port or urlparse(b.url).port for b in node.backends}
    port = FIRST_PORT
    while port in taken:
        port += 1
    return port


def _device_ids(node: Node, hardware: str) -> list[str]:
    """The node's devices whose hardware sizing placed the model on (`rtx-4090+ryzen-...`)."""
    wanted = set(hardware.split("+"))
    return [d.id for d in node.devices if d.hardware in wanted]


def _commands(
    node: Node, backend: Backend, stored: StoredModel, out: Path, fleet_file: Path
) -> list[tuple[str, str]]:
    from waveidp.render import models_dir

    host = node.address
    remote_dir = f"{models_dir(node)}/{stored.name}/"
    here = "this machine"
    source = stored.manifest.source
    cmds = [(here, f"rsync -a --mkpath {shlex.quote(str(stored.folder))}/ {host}:{remote_dir}")]
    if source.kind == "hf" and source.repo and source.revision:  # the same commit and file
        uri = f"hf://{source.repo}@{source.revision}:{stored.manifest.weights}"
        pull = f"WAVE_MODELS_DIR={models_dir(node)} wave models pull {uri} --name {stored.name}"
        cmds.append((f"{node.name}, instead of that rsync", pull))
    cmds += [
        (here, f"rsync -a --mkpath {shlex.quote(str(out / node.name))}/ {host}:wave/{node.name}/"),
        (node.name, f"cd wave/{node.name} && docker compose up -d {backend.name}"),
        (here, f"restart the gateway on the fleet file: wave up --config {fleet_file} (or wave serve)"),
    ]
    return cmds
