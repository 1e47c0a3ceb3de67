"""Where and how a store model runs: the device and format `wave fit` ranks first, and the engine
flags sizing gives for them.

    target = resolve_target(None, fleet=None)                    # this machine, every device
    placed = place(store, "smollm2-135m-instruct-f16", target)   # -> Placement (revision + fit row)

`wave fit` already prefers, among the stored formats of one model, one measured within the KLD
limit, and the fastest of those; `place` takes its choice per device group, keeps the llama.cpp
ones (a deployed engine is a llama-server) and picks the best verdict, then the fastest. The
flags come from sizing the chosen file again with the deployment's slots and context.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from waveidp.deploy.records import Revision
from waveidp.errors import ConfigError, InputError, NotFoundError

if TYPE_CHECKING:
    from waveidp.catalog._models import Hardware
    from waveidp.fleet.models import Fleet, Node
    from waveidp.models import ModelStore
    from waveidp.sizing._fit import FitRow

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0"})
DEFAULT_SLOTS = 4  # requests at once, as wave up's embedded engine
DEFAULT_CONTEXT = 4096  # tokens per slot
_RANK = {"fits": 0, "tight": 1, "offload": 2, "impossible": 3}


@dataclass(frozen=True)
class Target:
    """Where to deploy: a node (this machine, or a fleet node) and optionally one of its devices."""

    node: Node
    device: str | None  # a device id of the node, or None: let fit choose
    local: bool  # the node is the machine `wave up` runs on
    fleet: Fleet | None = None
    fleet_file: Path | None = None


@dataclass(frozen=True)
class Placement:
    revision: Revision
    row: FitRow  # fit's row for the chosen device and format (verdict, speed, arithmetic)
    target: Target


def resolve_target(on: str | None, *, fleet_file: Path | None) -> Target:
    """`--on NODE or NODE/DEVICE` against the fleet file (or this machine, detected, when there is none)."""
    node_name, _, device = (on or "").partition("/")
    if fleet_file is None:
        from waveidp.fleet.detect import detect_local_node

        node = detect_local_node()
        if node_name and node_name not in ("local", node.name):
            raise InputError(
                f"node '{node_name}' is not this machine ({node.name}) and no fleet file names it",
                where="--on",
                fix="give the fleet file with -f wave.yaml, or --on local or --on local/DEVICE",
            )
        target = Target(node, device or None, True)
    else:
        from waveidp import fleet as fleet_mod

        f = fleet_mod.load(fleet_file)
        if not node_name:
            local = [n for n in f.nodes if is_local(f, n)]
            if len(local) != 1:
                raise InputError(
                    f"the fleet file names {len(local)} nodes on this machine; say which",
                    where="--on",
                    fix="--on NODE or NODE/DEVICE with a node of " + str(fleet_file),
                )
            node_name = local[0].name
        try:
            node = f.node(node_name)
        except KeyError:
            raise NotFoundError("node", node_name, [n.name for n in f.nodes], where=str(fleet_file)) from None
        target = Target(node, device or None, is_local(f, node), f, fleet_file)
    if target.device is not None and target.device not in {d.id for d in target.node.devices}:
        known = [d.id for d in target.node.devices]
        raise NotFoundError(f"device of node {target.node.name}", target.device, known, where="--on")
    return target


def is_local(fleet: Fleet, node: Node) -> bool:
    return node.address in LOCAL_HOSTS or (fleet.gateway.node is not None and node.name == fleet.gateway.node)


def place(
    store: ModelStore,
    model: str,
    target: Target,
    *,
    quant: str | None = None,
    slots: int = DEFAULT_SLOTS,
    context: int = DEFAULT_CONTEXT,
    threads: int | None = None,
    max_kld_p95: float | None = None,
) -> Placement:
    """The store model `model` (or the best of its stored formats) on the best device of `target`."""
    from waveidp import catalog
    from waveidp.fleet import device_hardware
    from waveidp.models._variants import fit_variants
    from waveidp.sizing._fit import fit_node, node_hardware

    stored = store.get(model)  # NotFoundError with the store's names
    if stored.manifest.format != "gguf":
        raise InputError(
            f"{model} is {stored.manifest.format}; a deployed engine is llama-server, which loads GGUF",
            where=model,
            fix=f"quantize it first: wave models quantize {model} --to Q8_0 (for a GGUF made from it)",
        )
    devices = [d for d in target.node.devices if target.device is None or d.id == target.device]
    node = target.node
    accels, host = node_hardware(devices, lambda d: device_hardware(d, node))
    if target.device is not None and host is None:
        others = (d for d in node.devices if d.id != target.device)
        _, host = node_hardware(others, lambda d: device_hardware(d, node))  # offload target
    variants, stored_limit = fit_variants(store, model)
    variants = [v for v in variants if v.spec.file_quant]  # GGUF formats only
    spec = catalog.model(model)
    rows = fit_node(
        target.node.name,
        accels,
        host,
        [spec],
        dict(catalog.all_quants()),
        quant=quant.lower() if quant else None,
        context=context,
        variants={spec.id: variants},
        max_kld_p95=max_kld_p95 if max_kld_p95 is not None else stored_limit,
    )
    rows = [r for r in rows if r.engine == "llamacpp" and r.verdict != "impossible"]
    if target.device is not None:
        wanted = {hw.id for hw, _ in accels} or ({host.id} if host else set())
        rows = [r for r in rows if r.devices[0] in wanted]
    if not rows:
        where = f"{target.node.name}/{target.device}" if target.device else target.node.name
        raise ConfigError(
            f"no stored format of {model} fits {where}" + (f" as {quant}" if quant else ""),
            where=model,
            fix=f"see `wave fit -m {model}`; quantize a smaller format with `wave models quantize`",
        )
    row = min(rows, key=lambda r: (_RANK[r.verdict], -r.decode_tokens_per_s))
    chosen = row.variant or model
    hardware = _hardware_of(row, accels, host)
    flags = engine_flags(catalog.model(chosen), hardware, slots=slots, context=context, threads=threads)
    device = "+".join(row.devices)
    return Placement(Revision(model=chosen, device=device, flags=flags), row, target)


def _hardware_of(row: FitRow, accels: list[tuple[Hardware, int]], host: Hardware | None) -> list[Hardware]:
    by_id = {hw.id: hw for hw, _ in accels}
    if host is not None:
        by_id[host.id] = host
    return [by_id[i] for i in row.devices]


def engine_flags(
    spec: object, hardware: list[Hardware], *, slots: int, context: int, threads: int | None
) -> dict[str, int | str]:
    """llama-server flags from sizing `spec` on `hardware` with `slots` sequences of `context` tokens."""
    from waveidp.sizing import Deployment, SizingRequest, estimate

    kw: dict[str, object] = {"parallel": slots, "context": context}
    if threads:
        kw["threads"] = threads
    d = Deployment.build(spec, None, hardware, "llamacpp", **kw)  # type: ignore[arg-type]
    r = estimate(
        SizingRequest(
            deployment=d,
            prompt_tokens=min(512, context // 2),
            output_tokens=min(256, context // 4),
            concurrency=slots,
        )
    )
    if r.verdict == "impossible":
        raise ConfigError(
            f"{slots} slots of {context} tokens do not fit: {'; '.join(r.reasons)}",
            fix="use fewer --slots or a shorter --context",
        )
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in r.engine_flags.items()}  # type: ignore[misc]
