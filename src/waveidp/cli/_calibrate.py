"""`wave fleet detect --calibrate`: measure this node's CPU with llama-bench and keep the fit with the node.

It lives with detection because what it produces belongs to the node record detection writes:
the factors are stored in the node's device (`calibration.llamacpp`, with when and how they were
measured), so `wave size --fleet`, `wave fit --fleet`, `wave plan`, `wave render` and the
gateway's router, which all read devices through `waveidp.fleet.device_hardware`, use them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from waveidp.cli._app import err_console
from waveidp.errors import InputError
from waveidp.fleet import Calibration, Node, device_hardware
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


def calibrate_node(
    node: Node, models: list[Path], threads: list[int] | None, reps: int, *, packaged: bool = True
) -> Node:
    """`node` with its CPU device's llama.cpp calibration measured now."""
    from waveidp.bench.llama_bench import tests_in
    from waveidp.bench.node_calibration import QUICK_GEN, QUICK_PROMPT, calibrate_cpu, quick_threads
    from waveidp.engines.local_files import llama_tool

    index = next((i for i, d in enumerate(node.devices) if d.id == "cpu"), None)
    if index is None:
        raise InputError(
            "this node has no CPU device to calibrate (a Jetson's CPU is part of its SoC device)",
            where="wave fleet detect --calibrate",
        )
    device = node.devices[index]
    hw = device_hardware(device.model_copy(update={"calibration": {}}), node)
    threads = threads or quick_threads(hw.cores or 1)
    paths = [*(default_models() if packaged else []), *models]
    binary = llama_tool("llama-bench")
    total = len(paths) * tests_in(threads, [QUICK_PROMPT], [QUICK_GEN])
    with Progress(
        TextColumn("[bold]calibrating[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
    ) as progress:
        task = progress.add_task(f"{hw.name}: llama-bench", total=total)

        def advance(row: object) -> None:
            progress.advance(task)

        result = calibrate_cpu(hw, paths, threads=threads, binary=binary, reps=reps, on_row=advance)
    _print(result)
    cal = Calibration(
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
                timing="cpu" if m.row.threads == 1 else "wall",
            )
            for m in result.tests
        ],
    )
    devices = list(node.devices)
    devices[index] = device.model_copy(update={"calibration": {**device.calibration, "llamacpp": cal}})
    return node.model_copy(update={"devices": devices})


def _print(result: object) -> None:
    from waveidp.bench.node_calibration import CpuCalibration, predict_tokens_per_s

    assert isinstance(result, CpuCalibration)
    hw = result.hardware
    table = Table(
        title=f"llama-bench on {hw.name} vs sizing (ratio = predicted / measured)", title_justify="left"
    )
    for col in ("model", "test", "threads", "measured t/s", "prior", "ratio", "calibrated", "ratio"):
        table.add_column(col, justify="left" if col in ("model", "test") else "right")
    for m in result.tests:
        before = predict_tokens_per_s(hw, m, result.prior)
        after = predict_tokens_per_s(hw, m, result.fitted)
        got = m.row.tokens_per_s
        table.add_row(
            f"{m.spec.id} {m.quant}",
            m.row.test,
            str(m.row.threads),
            f"{got:,.1f}",
            f"{before:,.1f}",
            f"{before / got:.2f}",
            f"{after:,.1f}",
            f"{after / got:.2f}",
        )
    err_console.print(table)
    b, a = result.error(result.prior), result.error(result.fitted)
    for kind, label in (("pp", "prompt processing"), ("tg", "token generation")):
        if kind in b:
            err_console.print(
                f"median error, {label}: {b[kind]:.0%} before, {a[kind]:.0%} after calibration",
                highlight=False,
            )
    factors = ", ".join(f"{k} {v:.3g}" for k, v in result.factors().items())
    err_console.print(f"fitted: {factors}", highlight=False, soft_wrap=True)
