"""Checking a fleet's catalog references: device hardware ids, served models and quantizations.

Errors point at the offending value in the file (`file:line: nodes[0].devices[1].hardware`) and
suggest the closest catalog ids. A served `model` that is a path (a config.json or .gguf) is read
when it exists on this machine; a path that only exists on its node is left for that node.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from waveidp import catalog
from waveidp.catalog import Hardware, ModelSpec, Quant
from waveidp.errors import ConfigError, NotFoundError
from waveidp.fleet._loading import source_map
from waveidp.fleet._source_map import DataPath, dotted
from waveidp.fleet.hardware import device_hardware
from waveidp.fleet.models import Backend, Device, Fleet, Node, ServedModel

# engine kinds that load weights the way another engine does (for the quant/engine check)
_LOADS_LIKE = {
    "vllm": "vllm",
    "llamacpp": "llamacpp",
    "embedded": "llamacpp",
    "ollama": "llamacpp",
    "trtllm": "trtllm",
    "transformers": "transformers",
}

T = TypeVar("T")


@dataclass(frozen=True)
class ResolvedFleet:
    """A fleet whose catalog references all name real entries."""

    fleet: Fleet
    hardware: dict[str, Hardware]
    models: dict[str, ModelSpec]
    quants: dict[str, Quant]
    unresolved_models: list[str] = field(default_factory=list)

    def device_hardware(self, device: Device, node: Node | None = None) -> Hardware:
        """One unit of `device` as sizing sees it (`waveidp.fleet.hardware.device_hardware`)."""
        return device_hardware(device, node, base=self.hardware[device.hardware])

    def device_memory_bytes(self, device: Device, node: Node | None = None) -> int:
        """Memory of one unit of `device`: the device's `memory_gib`; for a CPU or NPU, which use
        system RAM, the node's `memory_gib`; else the catalog's figure."""
        return self.device_hardware(device, node).memory_bytes


def resolve(fleet: Fleet, *, base_dir: str | Path | None = None) -> ResolvedFleet:
    """Look up every catalog id the fleet uses; raise on the first unknown one (in file order)."""
    smap = source_map(fleet)
    if base_dir is None and smap is not None and not smap.filename.startswith("<"):
        base_dir = Path(smap.filename).parent
    hardware: dict[str, Hardware] = {}
    models: dict[str, ModelSpec] = {}
    quants: dict[str, Quant] = {}
    unresolved: list[str] = []

    def where(path: DataPath) -> str:
        line = smap.where(path) if smap else "<fleet>"
        return f"{line}: {dotted(path)}"

    for i, node in enumerate(fleet.nodes):
        for j, device in enumerate(node.devices):
            if device.hardware not in hardware:
                at = where(("nodes", i, "devices", j, "hardware"))
                hardware[device.hardware] = _lookup(
                    "hardware", device.hardware, catalog.hardware, catalog.all_hardware, at
                )
        for j, backend in enumerate(node.backends):
            for k, served in enumerate(backend.served()):
                path: DataPath = ("nodes", i, "backends", j, "models", k)
                if served.model is not None and served.model not in models:
                    spec = _model(served.model, base_dir, where((*path, "model")))
                    if spec is None:
                        unresolved.append(served.model)
                    else:
                        models[served.model] = spec
                if served.quant is not None:
                    at = where((*path, "quant"))
                    quant = quants.get(served.quant) or _lookup(
                        "quantization", served.quant, catalog.quant, catalog.all_quants, at
                    )
                    quants[served.quant] = quant
                    _check_engine(backend, served, quant, at)
    return ResolvedFleet(fleet, hardware, models, quants, unresolved)


def _lookup(
    kind: str, name: str, get: Callable[[str], T], every: Callable[[], Mapping[str, T]], where: str
) -> T:
    try:
        return get(name)
    except NotFoundError:
        raise NotFoundError(kind, name, every().keys(), where=where) from None


def _model(ref: str, base_dir: str | Path | None, where: str) -> ModelSpec | None:
    if not _looks_like_path(ref):
        return _lookup("model", ref, catalog.model, catalog.all_models, where)
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if not path.exists():
        return None  # a file on its own node, not here
    try:
        return catalog.model(str(path))
    except ConfigError as exc:
        raise ConfigError(f"cannot read model {ref}: {exc.what}", where=where) from None


def _looks_like_path(ref: str) -> bool:
    return "/" in ref or ref.endswith((".gguf", ".json"))


def _check_engine(backend: Backend, served: ServedModel, quant: Quant, where: str) -> None:
    engine = _LOADS_LIKE.get(backend.engine)
    if engine is None or engine in quant.engines:
        return
    raise ConfigError(
        f"backend {backend.name} ({backend.engine}) cannot load {served.name} as {quant.id}: "
        f"{quant.id} is loaded by {', '.join(quant.engines) or 'no engine'}",
        where=where,
    )
