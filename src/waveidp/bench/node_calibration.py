"""Calibrate one node's CPU for llama.cpp from a few minutes of the real `llama-bench`.

What is fitted: the scalars of the CPU prior (`waveidp.sizing._cpu`) that differ from machine to
machine, each a multiplier or share the efficiency factors already have:

- `prefill_compute`: scale on the kernel table's prompt-processing shares (clock, microarchitecture);
- `decode_compute`: scale on its token-generation shares;
- `decode_bandwidth`: share of the memory's peak that all threads stream together (the wall);
- `step_overhead_s`: fixed time per decode step (graph build, thread sync, sampling one token);
- `threads_compute`: share of n x the one-thread rate that n threads reach (when n > 1 was measured).

The kernel table's ratios between weight formats, tiers and prompt lengths stay as shipped, so a
fit on the packaged models carries over to other models and formats on the same node. The fit is
`waveidp.bench.quick_fit`'s, shared with the GPU calibration (a factor the tests cannot see, e.g.
the bandwidth wall on a 2-core machine, stays where the prior put it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from waveidp.bench.llama_bench import BenchRow
from waveidp.bench.quick_fit import (
    Measured,
    QuickCalibration,
    build_label,
    model_of,
    prior_value,
    quick_calibration,
)
from waveidp.catalog import Hardware
from waveidp.sizing import Deployment, Efficiency, PerfModel

FITTED: dict[str, tuple[float, float]] = {
    "prefill_compute": (0.05, 10.0),
    "decode_compute": (0.05, 10.0),
    "decode_bandwidth": (0.02, 1.0),
    "step_overhead_s": (1e-6, 0.05),
    "threads_compute": (0.1, 1.0),  # fitted only when more than one thread count was measured
}


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


# a factor is fitted only if moving it by this ratio moves some test's prediction by SEEN or more
PROBE_RATIO = 1.25
SEEN = 0.02


def fitted_names(
    hw: Hardware, tests: Sequence[Measured], prior: Efficiency
) -> dict[str, tuple[float, float]]:
    """The CPU factors `tests` can pin down, with their bounds: those that change some test's
    prediction at the prior. A factor the tests do not see is left where the prior put it, else the
    fit would spend it on the tests' noise: one thread of a 2-core machine streams far below the
    memory's wall, and a fitted `decode_bandwidth` there moved from 0.8 to 0.64 to split a 5%
    difference between two compute-bound tg tests, slowing every bandwidth-bound f16 prediction."""
    several = len({m.row.threads for m in tests}) > 1
    base = [predict_tokens_per_s(hw, m, prior) for m in tests]

    def seen(name: str) -> bool:
        value = prior_value(prior, name)
        for ratio in (PROBE_RATIO, 1 / PROBE_RATIO):
            moved = prior.model_copy(update={name: value * ratio})
            if any(
                abs(math.log(predict_tokens_per_s(hw, m, moved) / b)) >= SEEN
                for m, b in zip(tests, base, strict=True)
            ):
                return True
        return False

    return {n: b for n, b in FITTED.items() if (n != "threads_compute" or several) and seen(n)}


def calibration(hw: Hardware, tests: list[Measured], prior: Efficiency, method: str = "") -> QuickCalibration:
    """The CPU factors that make sizing reproduce `tests` on `hw`, from (and pulled towards) `prior`."""
    return quick_calibration(hw, tests, prior, fitted_names(hw, tests, prior), predict_tokens_per_s, method)


def fit(hw: Hardware, tests: Sequence[Measured], prior: Efficiency) -> Efficiency:
    """The fitted factors alone (`calibration(...).fitted`)."""
    return calibration(hw, list(tests), prior).fitted


# ---- running it -------------------------------------------------------------------------------

QUICK_PROMPT = 128
QUICK_GEN = 32
QUICK_REPS = 3


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
) -> QuickCalibration:
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
    method = (
        f"{build_label(binary, tests[0].row.build if tests else '')}: pp{n_prompt} and tg{n_gen}, "
        f"threads {','.join(map(str, threads))} (one thread timed by each repetition's CPU time, "
        f"median of {reps}; more by the wall clock, best of {reps}), on {', '.join(names)}"
    )
    return calibration(hw, tests, prior, method)


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
