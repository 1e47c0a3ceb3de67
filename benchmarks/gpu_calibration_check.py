"""`wave calibrate --quick` on the H100, judged on what it did not see.

The command ran on the H100 device machine (`benchmarks/gpu_calibrate_device.sh`; its fleet file,
output and exact command are in benchmarks/results/gpu/calibrate/): llama-bench pp128, pp512 and
tg128 with every layer on the GPU, on the two packaged models and a Llama-3.2-3B-shaped q5_k_m
file of the user's, fitted, stored with the node's gpu0. This script takes the stored factors as
every consumer does (`fleet.device_hardware` -> `efficiency_of`) and measures their error on:

- held-out llama-bench tests: the same three files at other prompt and generation lengths, the 3B
  in q8_0, q4_k_m and f16 (measured in two device calls, `held-out.json`), and the 8B in three
  formats of earlier calls (`runs/llama-bench-*.json`), models described by their catalog entries;
- held-out served points: the 23 `wave bench` runs of rounds 7 and 9 on the same H100 class and
  build (llama-server, 1-48 clients), replayed as `wave bench --predict` does.

Rows: the shipped H100 entry (the prior), the stored calibration, its repeat minutes later, the
first run (whose fit also moved the per-layer prompt floor), the stored tests refitted that way
(the same measurements, so the one difference is the floor), the generic GPU prior with and
without the same quick fit (what a GPU Wave has no entry for gets), and both again without
llama-server's host terms (`HOST_TERMS`, which llama-bench cannot measure; the generic prior takes
them from the H100 host), as the generic prior was before it had them.

    .venv/bin/python benchmarks/gpu_calibration_check.py

writes benchmarks/results/gpu/calibrate/check.json and check.png.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from waveidp import catalog, fleet
from waveidp.bench.gpu_calibration import FITTED, calibration, fitted_names, predict_tokens_per_s
from waveidp.bench.llama_bench import BenchRow, parse_row
from waveidp.bench.quick_fit import Measured, quick_calibration
from waveidp.catalog import Hardware
from waveidp.sizing import Efficiency, efficiency_for, efficiency_of

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks/results/gpu/calibrate"
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_quick_calibration as recorded  # noqa: E402

CATALOG_ID = {"smollm2": "smollm2-135m", "gemma-3-270m": "gemma-3-270m", "llama-3.2-3b": "llama-3.2-3b"}
EARLIER = ("llama-bench-q4_k_m.json", "llama-bench-q8_0.json", "llama-bench-f16.json")  # the 8B


def _catalog_id(text: str) -> str:
    return next(v for k, v in CATALOG_ID.items() if k in text.lower())


def stored(path: Path) -> tuple[Hardware, Hardware, fleet.Calibration]:
    """The H100 as sizing sees it without and with the fleet file's calibration, and the calibration."""
    node = fleet.load(path).node("h100")
    gpu = next(d for d in node.devices if d.id == "gpu0")
    bare = fleet.device_hardware(gpu.model_copy(update={"calibration": {}}), node)
    return bare, fleet.device_hardware(gpu, node), gpu.calibration["llamacpp"]


def quick_tests(cal: fleet.Calibration) -> list[Measured]:
    """The command's own tests, from the measurements the fleet file keeps."""
    out = []
    for p in cal.measurements:
        rate = p.tokens_per_s
        row = BenchRow(
            Path(p.model), p.threads, p.n_prompt, p.n_gen, rate, rate, (rate,), "(stored)",
            gpu_layers=p.gpu_layers, backends="CUDA",
        )  # fmt: skip
        out.append(Measured(row, catalog.model(_catalog_id(p.model)), p.quant))
    return out


def held_out() -> list[Measured]:
    out = []
    for path in (OUT / "held-out.json", OUT / "run1-4-factors/held-out.json"):
        for label, rows in json.loads(path.read_text()).items():
            model = _catalog_id(label)
            quant = label.removeprefix(f"{model}-")  # labels are catalog id + quant
            out += [
                Measured(parse_row(r, Path(r["model_filename"]), label), catalog.model(model), quant)
                for r in rows
            ]
    for name in EARLIER:
        out += recorded.tests(name)
    return out


# llama-server's work on the host CPU, which llama-bench does not do and so cannot calibrate
HOST_TERMS = ("first_token_s", "sequence_step_s", "sequence_step_s_per_vocab", "host_copy_bytes_per_s")


def without_host_terms(eff: Efficiency) -> Efficiency:
    """`eff` without llama-server's host terms (the generic prior before it took the H100 host's)."""
    return eff.model_copy(update={k: Efficiency.model_fields[k].default for k in HOST_TERMS})


def floor_too(hw: Hardware, tests: list[Measured]) -> Efficiency:
    """The stored tests fitted as the first run did: the per-layer prompt floor moved as well."""
    prior = efficiency_of(hw, "llamacpp")
    bounds = {**fitted_names(prior), "prefill_layer_token_s": FITTED["prefill_layer_token_s"]}
    return quick_calibration(hw, tests, prior, bounds, predict_tokens_per_s, "").fitted


def main() -> None:
    os.environ["WAVE_HOME"] = tempfile.mkdtemp(prefix="wave-gpu-check-")
    bare, calibrated, cal = stored(OUT / "wave.yaml")
    _, repeat, repeat_cal = stored(OUT / "wave-repeat.yaml")
    _, first, first_cal = stored(OUT / "run1-4-factors/wave.yaml")
    quick, held = quick_tests(cal), held_out()
    generic = efficiency_for("a-gpu-wave-has-no-entry-for", "llamacpp", kind="gpu")
    cases: dict[str, Efficiency] = {
        "shipped H100 entry (before)": efficiency_of(bare, "llamacpp"),
        "wave calibrate --quick (stored)": efficiency_of(calibrated, "llamacpp"),
        "the same, repeated": efficiency_of(repeat, "llamacpp"),
        "first run (floor fitted too)": efficiency_of(first, "llamacpp"),
        "stored tests refitted, floor too": floor_too(bare, quick),
        "generic GPU prior": generic,
        "generic prior + the quick fit": calibration(bare, quick, generic).fitted,
        "before: generic GPU prior": without_host_terms(generic),
        "before: generic + the quick fit": calibration(bare, quick, without_host_terms(generic)).fitted,
    }
    doc: dict[str, Any] = {
        "command": "python benchmarks/gpu_calibration_check.py",
        "device_command": (OUT / "command.txt").read_text().strip(),
        "stored": {
            "factors": cal.factors,
            "error_before": cal.error_before,
            "error_after": cal.error_after,
            "measured_at": cal.measured_at,
        },
        "repeat": {"factors": repeat_cal.factors, "error_after": repeat_cal.error_after},
        "first_run": {"factors": first_cal.factors, "error_after": first_cal.error_after},
        "held_out_tests": len(held),
        "cases": {},
    }
    for label, eff in cases.items():
        with redirect_stdout(io.StringIO()):
            doc["cases"][label] = recorded.summary(bare, label, eff, quick, held)
        _print(label, doc["cases"][label])
    (OUT / "check.json").write_text(json.dumps(doc, indent=1) + "\n")
    _plot(doc, OUT / "check.png")
    print(f"wrote {(OUT / 'check.json').relative_to(ROOT)} and check.png")


def _print(label: str, s: dict[str, Any]) -> None:
    q, h, v = s["quick_tests"], s["held_out_llama_bench"], s["held_out_served"]
    print(
        f"{label:32s} own pp {q['pp']:6.0%} tg {q['tg']:5.0%} | held-out llama-bench pp {h['pp']:5.0%} "
        f"tg {h['tg']:5.0%} (worst {h['worst']:.2f}x) | served TTFT {v['ttft_ms']['median_error']:5.0%} "
        f"ITL {v['itl_ms']['median_error']:5.0%} tok/s {v['output_tokens_per_s']['median_error']:5.0%}"
    )


def _plot(doc: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [
        ("held_out_llama_bench", "pp", "llama-bench pp\n(held out)"),
        ("held_out_llama_bench", "tg", "llama-bench tg\n(held out)"),
        ("held_out_served", "ttft_ms", "served TTFT"),
        ("held_out_served", "itl_ms", "served ITL"),
        ("held_out_served", "output_tokens_per_s", "served tok/s"),
    ]
    labels = list(doc["cases"])
    fig, ax = plt.subplots(figsize=(11, 4.8))
    width = 0.8 / len(labels)
    for i, label in enumerate(labels):
        vals = []
        for group, key, _ in metrics:
            v = doc["cases"][label][group][key]
            vals.append(100 * (v["median_error"] if isinstance(v, dict) else v))
        xs = [j + (i - (len(labels) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(xs, vals, width, label=label)
    ax.set_xticks(range(len(metrics)), [m[2] for m in metrics], fontsize=8)
    ax.set_ylabel("median |predicted / measured - 1|, %")
    ax.set_yscale("log")
    ax.set_title("H100: wave calibrate --quick, judged on tests and served points it did not see")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
