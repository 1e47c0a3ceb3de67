"""`wave fleet detect --calibrate`: measure this node's CPU and NVIDIA GPUs (or Jetson) with
llama-bench and keep the fit with the node.

It lives with detection because what it produces belongs to the node record detection writes:
the factors are stored in each measured device (`calibration.llamacpp`, with when and how they were
measured, the error before and after, and the measurements), so `wave size --fleet`, `wave fit
--fleet`, `wave plan`, `wave render`, deploy placement and the gateway's router, which all read
devices through `waveidp.fleet.device_hardware`, use them.

Which devices: those named with `--device`, else the CPU and every NVIDIA GPU detection found (the
GPUs first: their tests take seconds); on a Jetson, its SoC device, whose integrated GPU runs
llama.cpp. A GPU is measured with every layer on it (`-ngl 99`), so only with a llama-bench built
with CUDA; without one the command stops and says so rather than store the CPU's speed as the GPU's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from waveidp.bench.quick_fit import QuickCalibration
from waveidp.cli._app import err_console
from waveidp.errors import InputError
from waveidp.fleet import Calibration, Device, Node, device_hardware
from waveidp.fleet.models import CalibrationPoint


def default_models() -> list[Path]:
    """The models that ship with Wave: SmolLM2-135M (always) and Gemma 3 270M (when installed)."""
    from waveidp.engines.local_files import MissingComponentError, embedded_model_path
    from waveidp.models import gemma_model_path

    out = [embedded_model_path()]
    try:
        out.append(gemma_model_path())
    except MissingComponentError:
        err_console.print("[yellow]note:[/] Gemma 3 270M is not installed; calibrating on SmolLM2 only")
    return out


def _runs_cuda(device: Device) -> bool:
    """An NVIDIA GPU of the catalog, or a Jetson (an NVIDIA SoC: llama.cpp runs on its GPU)."""
    from waveidp import catalog
    from waveidp.errors import NotFoundError

    try:
        hw = catalog.hardware(device.hardware)
    except NotFoundError:
        return False
    return hw.kind in ("gpu", "soc") and "nvidia" in hw.vendor.lower()


def devices_to_calibrate(node: Node, wanted: list[str] | None) -> list[Device]:
    """The devices `--calibrate` measures: `wanted` (ids), else the CPU and every NVIDIA GPU."""
    where = "wave fleet detect --calibrate"
    if wanted:
        by_id = {d.id: d for d in node.devices}
        picked = []
        for dev_id in dict.fromkeys(wanted):
            device = by_id.get(dev_id)
            if device is None:
                raise InputError(
                    f"this node has no device {dev_id!r} (detected: {', '.join(by_id) or 'none'})",
                    where="--device",
                    fix="name a detected device; GPUs are found through NVIDIA's NVML (nvidia-ml-py), a "
                    "Jetson from its device tree",
                )
            if device.id != "cpu" and not _runs_cuda(device):
                raise InputError(
                    f"device {dev_id!r} ({device.hardware}) cannot be calibrated: only the CPU, NVIDIA "
                    "GPUs of the catalog and Jetsons can",
                    where="--device",
                )
            picked.append(device)
        return picked
    gpus = [d for d in node.devices if _runs_cuda(d)]
    cpu = [d for d in node.devices if d.id == "cpu"]
    if not gpus and not cpu:
        found = ", ".join(f"{d.id} ({d.hardware})" for d in node.devices) or "none"
        raise InputError(
            f"this node has no device llama-bench can calibrate (detected: {found})", where=where
        )
    if not gpus:
        unknown = [d for d in node.devices if d.id.startswith("gpu")]
        why = (
            f"{', '.join(f'{d.id} ({d.name})' for d in unknown)} is not in the hardware catalog"
            if unknown
            else "no NVIDIA GPU was detected (NVML, nvidia-ml-py)"
        )
        err_console.print(f"[dim]{why}: calibrating the CPU only[/]", highlight=False)
    return [*gpus, *cpu]


def gpu_index(node: Node, device: Device) -> int:
    """NVML's index of `device`'s first GPU (the numbering `wave render` hands engines)."""
    from waveidp.fleet._gpus import gpu_indices
    from waveidp.fleet.models import Backend

    probe = Backend(name="calibrate", engine="llamacpp", url="http://localhost", devices=[device.id])
    indices = gpu_indices(node, probe) or (0,)
    return indices[0]


def calibrate_node(
    node: Node,
    models: list[Path],
    threads: list[int] | None,
    reps: int,
    *,
    packaged: bool = True,
    devices: list[str] | None = None,
) -> Node:
    """`node` with the llama.cpp calibration of its CPU and GPUs (or of `devices`) measured now."""
    from waveidp.bench.gpu_calibration import QUICK_GEN as GPU_GEN
    from waveidp.bench.gpu_calibration import QUICK_PROMPTS, GpuCalibrationError, calibrate_gpu
    from waveidp.bench.llama_bench import tests_in
    from waveidp.bench.node_calibration import QUICK_GEN, QUICK_PROMPT, calibrate_cpu, quick_threads
    from waveidp.engines.local_files import llama_tool

    targets = devices_to_calibrate(node, devices)
    paths = [*(default_models() if packaged else []), *models]
    binary = llama_tool("llama-bench")
    plans = []
    for device in targets:
        hw = device_hardware(device.model_copy(update={"calibration": {}}), node)
        if device.id == "cpu":
            cpu_threads = threads or quick_threads(hw.cores or 1)
            plans.append(
                (device, hw, cpu_threads, len(paths) * tests_in(cpu_threads, [QUICK_PROMPT], [QUICK_GEN]))
            )
        else:
            plans.append((device, hw, [], len(paths) * tests_in([], QUICK_PROMPTS, [GPU_GEN])))
    results: list[tuple[Device, QuickCalibration]] = []
    with Progress(
        TextColumn("[bold]calibrating[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        for device, hw, cpu_threads, total in plans:
            task = progress.add_task(f"{device.id} ({hw.name}): llama-bench", total=total)

            def advance(row: object, task: TaskID = task) -> None:
                progress.advance(task)

            if device.id == "cpu":
                result = calibrate_cpu(
                    hw, paths, threads=cpu_threads, binary=binary, reps=reps, on_row=advance
                )
            else:
                try:
                    result = calibrate_gpu(
                        hw, paths, binary=binary, index=gpu_index(node, device), reps=reps, on_row=advance,
                        name=None if hw.kind == "soc" else device.name,  # CUDA calls a Jetson's GPU "Orin"
                    )  # fmt: skip
                except GpuCalibrationError as exc:
                    if devices:
                        raise
                    alone = "or `--device cpu` to calibrate the CPU alone"
                    raise GpuCalibrationError(
                        exc.what, where=exc.where, fix=f"{exc.fix}; {alone}" if exc.fix else alone
                    ) from None
            results.append((device, result))
    for device, result in results:
        _print(device, result)
        node = with_calibration(node, device.id, stored(result))
    return node


def stored(result: QuickCalibration) -> Calibration:
    """What the fleet file keeps of a quick calibration: factors, when, how, errors, measurements."""
    return Calibration(
        factors=result.factors(),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        method=result.method,
        points=len(result.tests),
        error_before=result.error(result.prior),
        error_after=result.error(result.fitted),
        measurements=[
            CalibrationPoint(
                model=str(m.row.model),
                quant=m.quant,
                threads=m.row.threads,
                n_prompt=m.row.n_prompt,
                n_gen=m.row.n_gen,
                tokens_per_s=round(m.row.tokens_per_s, 3),
                timing="cpu" if m.row.threads == 1 and not m.row.gpu_layers else "wall",
                gpu_layers=m.row.gpu_layers,
            )
            for m in result.tests
        ],
    )


def with_calibration(node: Node, device_id: str, cal: Calibration) -> Node:
    """`node` with `cal` as device `device_id`'s llama.cpp calibration."""
    devices = [
        d.model_copy(update={"calibration": {**d.calibration, "llamacpp": cal}}) if d.id == device_id else d
        for d in node.devices
    ]
    return node.model_copy(update={"devices": devices})


def _print(device: Device, result: QuickCalibration) -> None:
    hw = result.hardware
    gpu = device.id != "cpu"
    table = Table(
        title=f"llama-bench on {device.id} ({hw.name}) vs sizing (ratio = predicted / measured)",
        title_justify="left",
    )
    setting = "gpu layers" if gpu else "threads"
    for col in ("model", "test", setting, "measured t/s", "prior", "ratio", "calibrated", "ratio"):
        table.add_column(col, justify="left" if col in ("model", "test") else "right")
    before, after = result.ratios(result.prior), result.ratios(result.fitted)
    for m, b, a in zip(result.tests, before, after, strict=True):
        got = m.row.tokens_per_s
        table.add_row(
            f"{m.spec.id} {m.quant}",
            m.row.test,
            str(m.row.gpu_layers if gpu else m.row.threads),
            f"{got:,.1f}",
            f"{b * got:,.1f}",
            f"{b:.2f}",
            f"{a * got:,.1f}",
            f"{a:.2f}",
        )
    err_console.print(table)
    b_err, a_err = result.error(result.prior), result.error(result.fitted)
    for kind, label in (("pp", "prompt processing"), ("tg", "token generation")):
        if kind in b_err:
            err_console.print(
                f"{device.id}: median error, {label}: {b_err[kind]:.0%} before, "
                f"{a_err[kind]:.0%} after calibration",
                highlight=False,
            )
    factors = ", ".join(f"{k} {v:.3g}" for k, v in result.factors().items())
    err_console.print(f"{device.id}: fitted {factors}", highlight=False, soft_wrap=True)
