"""A `sizing_cpu.py` sweep predicted with the CPU kernel cells of a git revision (before) and with
the working tree's (after): median error per build, kind (pp/tg) and model group (the packaged
models a quick calibration runs, the generated 1B the cells are fitted to), as detected and after
the build's own quick calibration (`sizing_cpu.own_calibrations`), then every row's ratio.

    .venv/bin/python benchmarks/investigations/cpu/cells_before_after.py main \\
        benchmarks/results/cpu/sweep_avx2.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sizing_cpu as sc  # noqa: E402

from waveidp.catalog import Hardware  # noqa: E402
from waveidp.sizing import _cpu as cpu  # noqa: E402


def predicted(doc: dict[str, Any], label: str) -> list[dict[str, Any]]:
    prior = Hardware.model_validate({**doc["devices"]["prior"], "calibration": {}})
    rows = [dict(r) for r in doc["rows"]]
    own = sc.own_calibrations(rows, prior)
    sc.add_predictions(rows, prior, prior, own)
    for name, v in sc.summarize(rows).items():
        if not name.startswith("all"):
            print(
                f"{label:6s} {name:28s} n={v['n']:2d}  as detected {v['median_error_prior']:.0%} "
                f"(worst {v['worst_ratio_prior']:.2f}x)  own calibration {v['median_error_calibrated']:.0%} "
                f"(worst {v['worst_ratio_calibrated']:.2f}x)"
            )
    for build, c in own.items():
        errors = f"{c['error_before']} -> {c['error_after']}"
        print(f"{label:6s} {build}: own calibration {c['factors']}, its tests {errors}")
    return rows


def main() -> None:
    rev, sweep = sys.argv[1], Path(sys.argv[2])
    doc = json.loads(sweep.read_text())
    text = subprocess.run(
        ["git", "show", f"{rev}:src/waveidp/sizing/data/cpu_kernels.yaml"],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cpu_kernels.yaml"
        path.write_text(text)
        old = cpu.read_typed(path, cpu.CpuTable)
    new = cpu.table()
    cpu.table = lambda: old  # type: ignore[method-assign]
    before = predicted(doc, "before")
    cpu.table = lambda: new  # type: ignore[method-assign]
    after = predicted(doc, "after")
    print("row: measured tok/s, as detected before -> after, own calibration before -> after")
    for a, b in zip(before, after, strict=True):
        print(
            f"  {a['model']:24s} {a['test']:6s} {a['measured_tokens_per_s']:7.1f}  "
            f"{a['ratio_prior']:.2f} -> {b['ratio_prior']:.2f}  "
            f"{a['ratio_calibrated']:.2f} -> {b['ratio_calibrated']:.2f}"
        )


if __name__ == "__main__":
    main()
