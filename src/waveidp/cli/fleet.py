"""`wave fleet` verbs: detect this machine, show and validate a fleet file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from waveidp.cli._app import app, console, err_console, print_json
from waveidp.errors import InputError

fleet_app = typer.Typer(
    help="The fleet file (wave.yaml): detect this machine, show, validate.", no_args_is_help=True
)
app.add_typer(fleet_app, name="fleet")

if TYPE_CHECKING:
    from waveidp.fleet import Device, Fleet, Node, ServedModel
    from waveidp.fleet.models import Slo

_GIB = 1024**3


@fleet_app.command("detect")
def detect(
    name: str = typer.Option(None, "--name", help="node name (default: this host's name)"),
    merge: Path = typer.Option(None, "--merge", help="merge the node into this fleet file (created if new)"),
    as_json: bool = typer.Option(False, "--json", help="print the node as JSON"),
    calibrate: bool = typer.Option(
        False,
        "--calibrate",
        help="run the real llama-bench on this node's CPU and NVIDIA GPUs or Jetson (the packaged "
        "models, a minute or a few) and store the fitted sizing factors with each device",
    ),
    calibrate_devices: list[str] = typer.Option(
        [], "--device", "-d", help="with --calibrate: only this device, e.g. cpu or gpu0 (repeatable)"
    ),
    models: list[Path] = typer.Option(
        [], "--model", "-m", help="also calibrate on this GGUF file (repeatable; with --calibrate)"
    ),
    packaged: bool = typer.Option(
        True,
        "--packaged/--no-packaged",
        help="calibrate on the models that ship with Wave (SmolLM2, Gemma 3)",
    ),
    threads: str = typer.Option(
        None, "--threads", "-t", help="thread counts to measure, e.g. 1,8,16 (default: 1, half, all cores)"
    ),
    reps: int = typer.Option(3, "--reps", help="llama-bench repetitions per test (the best is kept)"),
    probe: bool = typer.Option(
        None,
        "--probe/--no-probe",
        help="measure the memory bandwidth (~2 s; default: for a CPU the catalog lacks, or --calibrate)",
    ),
) -> None:
    """Read this machine (CPU, memory, NVIDIA GPUs, NPUs) and print it as a fleet node, or merge it;
    with --calibrate, measure its CPU and GPUs with llama-bench first."""
    from waveidp import fleet
    from waveidp.fleet._atomic_file import write_atomic
    from waveidp.fleet.detect import DETECTED_FIELDS, detect_local_node

    if calibrate_devices and not calibrate:
        raise InputError("--device is only used with --calibrate", where="--device", fix="add --calibrate")
    if models and not calibrate:
        raise InputError("--model is only used with --calibrate", where="--model", fix="add --calibrate")
    if calibrate and not packaged and not models:
        raise InputError("nothing to calibrate on", where="--no-packaged", fix="give a --model file")
    if not 1 <= reps <= 20:
        raise InputError(f"--reps {reps} is out of range", where="--reps", fix="use 1 to 20")
    thread_list = _thread_list(threads) if threads else None
    if calibrate:
        for m in models:
            if not m.is_file():
                raise InputError(f"model file {m} not found", where="--model", fix="give a .gguf file path")
    node = detect_local_node(name, probe=True if calibrate and probe is None else probe)
    old_text = merge.read_text(encoding="utf-8") if merge is not None and merge.exists() else ""
    if old_text.strip():
        node = _keep_calibrations(node, fleet.loads(old_text, str(merge)))
    measured: list[str] = []
    if calibrate:
        from waveidp.cli._calibrate import calibrate_node

        calibrated_before = {d.id: d.calibration.get("llamacpp") for d in node.devices}
        node = calibrate_node(node, models, thread_list, reps, packaged=packaged, devices=calibrate_devices)
        measured = [
            d.id for d in node.devices if d.calibration.get("llamacpp") is not calibrated_before.get(d.id)
        ]
    if merge is not None:
        existed = merge.exists()
        text = old_text
        if existed and text.strip():
            before = {n.name for n in fleet.loads(text, str(merge)).nodes}
            new_text = fleet.merge_node_text(text, str(merge), node, only=DETECTED_FIELDS)
        else:
            before = set()
            new_text = fleet.dump(fleet.Fleet(nodes=[node]))
        fleet.loads(new_text, str(merge))  # never write a file we could not read back
        write_atomic(merge, new_text)
        verb = "updated" if node.name in before else "added"
        err_console.print(f"{verb} node [bold]{node.name}[/] in {merge}", highlight=False)
        if calibrate:
            err_console.print(
                f"sizing uses the calibration with --fleet {merge}: e.g. `wave size -m MODEL --fleet "
                f"{merge} --device {node.name}/{measured[0]}`, `wave fit --fleet {merge}`, `wave plan`, "
                "`wave render`, `wave deploy`, the router",
                highlight=False,
                soft_wrap=True,
            )
    _warn_unknown_hardware(node)
    if as_json:
        print_json(node)
    elif merge is None:
        typer.echo(fleet.dump(fleet.Fleet(nodes=[node])), nl=False)


def _thread_list(text: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        values = []
    if not values or values[0] < 1 or values[-1] > 4096:
        raise InputError(
            f"--threads {text!r} is not a list of thread counts", where="--threads", fix="e.g. 1,8"
        )
    return values


def _keep_calibrations(node: Node, old: Fleet) -> Node:
    """A re-detected node keeps the calibration of each device that is still the same hardware."""
    try:
        before = old.node(node.name)
    except KeyError:
        return node
    kept = {d.id: d for d in before.devices if d.calibration}
    devices = [
        d.model_copy(update={"calibration": kept[d.id].calibration})
        if d.id in kept and _same_board(kept[d.id], d) and not d.calibration
        else d
        for d in node.devices
    ]
    return node.model_copy(update={"devices": devices})


def _same_board(before: Device, now: Device) -> bool:
    """The same hardware id and, where both were named, the same name: an unlisted CPU or GPU
    (`cpu-generic`, `gpu-generic`) is one id for every board."""
    return before.hardware == now.hardware and (
        before.name is None or now.name is None or before.name == now.name
    )


def _warn_unknown_hardware(node: Node) -> None:
    from waveidp import catalog

    known = catalog.all_hardware()
    for device in node.devices:
        if device.hardware not in known:
            err_console.print(
                f"[yellow]warning:[/] {device.name or device.id}: no hardware catalog entry "
                f"'{device.hardware}'; sizing cannot use this device until one is added",
                highlight=False,
            )
        elif device.hardware in (catalog.GENERIC_CPU, catalog.GENERIC_GPU):
            err_console.print(f"[dim]note: {_described(node, device)}[/]", highlight=False)


def _described(node: Node, device: Device) -> str:
    """What sizing takes for a device the catalog does not list, as detection described it."""
    from waveidp.fleet import device_hardware

    hw = device_hardware(device, node)
    peak = max(hw.dense_flops.values(), default=0) / 1e12
    what = f"{device.sms} SMs at {device.boost_ghz or device.max_ghz} GHz, " if device.sms else ""
    return (
        f"{node.name}/{device.id} ({device.name or 'unnamed'}) is not in the hardware catalog: sized as "
        f"{device.hardware} described by detection ({what}{hw.memory_bytes / _GIB:.1f} GiB, "
        f"{hw.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s, {peak:,.1f} peak TFLOPS/TOPS); "
        "`wave fleet detect --calibrate` measures it"
    )


@fleet_app.command("validate")
def validate(path: Path = typer.Argument(..., help="fleet file, e.g. wave.yaml")) -> None:
    """Check a fleet file and its catalog references; one clear error line (exit 2) if anything is wrong."""
    from waveidp import fleet

    f = fleet.load(path)
    resolved = fleet.resolve(f)
    devices = sum(len(n.devices) for n in f.nodes)
    note = ""
    if resolved.unresolved_models:
        note = f" ({len(resolved.unresolved_models)} model path(s) live on their nodes, not checked here)"
    for node in f.nodes:  # resolve() refused unknown ids: this notes the devices sized as detected
        _warn_unknown_hardware(node)
    console.print(
        f"[green]ok[/] {path}: {len(f.nodes)} nodes, {devices} devices, "
        f"{len(f.backends())} backends, {len(f.links)} links{note}",
        highlight=False,
    )


@fleet_app.command("show")
def show(
    path: Path = typer.Argument(..., help="fleet file, e.g. wave.yaml"),
    as_json: bool = typer.Option(False, "--json", help="print the fleet with its catalog figures as JSON"),
) -> None:
    """Print nodes, their devices (with catalog memory and bandwidth), backends, links and the gateway."""
    from waveidp import fleet

    resolved = fleet.resolve(fleet.load(path))
    f = resolved.fleet
    if as_json:
        print_json(
            {
                "fleet": f.model_dump(mode="json"),
                "hardware": {
                    hid: {
                        "name": h.name,
                        "kind": h.kind,
                        "memory_bytes": h.memory_bytes,
                        "memory_bandwidth_bytes_per_s": h.memory_bandwidth_bytes_per_s,
                        "source": h.source,
                    }
                    for hid, h in resolved.hardware.items()
                },
            }
        )
        return

    from rich.tree import Tree

    tree = Tree(f"[bold]{f.name}[/] ({path})", highlight=False)
    for node in f.nodes:
        facts = [node.address, node.role or "", node.os]
        if node.memory_gib:
            facts.append(f"{node.memory_gib:g} GiB RAM")
        if node.lxc:
            facts.append(f"LXC {node.lxc.vmid} on {node.lxc.host}")
        if f.gateway.node == node.name:
            facts.append(f"[magenta]gateway :{f.gateway.port}[/]")
        branch = tree.add(f"[bold cyan]{node.name}[/]  " + ", ".join(x for x in facts if x))
        for d in node.devices:
            hw = resolved.device_hardware(d)
            count = f"{d.count} x " if d.count > 1 else ""
            memory = resolved.device_memory_bytes(d, node) / _GIB
            branch.add(
                f"[green]{d.id}[/]  {count}{hw.name} [dim]{hw.id}, {hw.kind}[/]  "
                f"{memory:.1f} GiB, {hw.memory_bandwidth_bytes_per_s / 1e9:.0f} GB/s"
            )
        for b in node.backends:
            models = ", ".join(_served_label(m) for m in b.served()) or "no models listed"
            uses = f" on {', '.join(b.devices)}" if b.devices else ""
            branch.add(f"[yellow]{b.name}[/]  {b.engine}{uses}  {b.url}  [dim]{models}[/]")
    if f.links:
        links = tree.add("[bold]links[/]")
        for link in f.links:
            links.add(f"{link.a} <-> {link.b}  {link.bandwidth_gbps:g} Gb/s, {link.latency_ms:g} ms")
    tree.add(
        f"[bold]routing[/] default {f.routing.default_policy}"
        + "".join(f"; {m}: {r.policy}{_slo_label(r.slo)}" for m, r in f.routing.models.items())
    )
    console.print(tree)


def _slo_label(slo: Slo | None) -> str:
    if slo is None:
        return ""
    parts = [f"TTFT <= {slo.ttft_s:g} s"] if slo.ttft_s else []
    parts += [f"ITL <= {slo.itl_s * 1000:g} ms"] if slo.itl_s else []
    return f" (SLO {', '.join(parts)})"


def _served_label(m: ServedModel) -> str:
    parts = [p for p in (m.model, m.quant, f"{m.context} ctx" if m.context else None) if p]
    return f"{m.name} ({', '.join(parts)})" if parts else m.name
