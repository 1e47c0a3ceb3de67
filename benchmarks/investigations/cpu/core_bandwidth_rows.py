"""What one core's streaming read would have to be for each CPU decode row of the validation set
(tests/sizing/data/published.yaml) to come out right, and whether the model has the row
compute-bound or bandwidth-bound at all.

For every llama.cpp CPU decode row: the uncalibrated prediction with the shipped one-core figure
(`engines.yaml` parallel.cpu_core_bandwidth_bytes_per_s, or the row's probe), with one core at 10-40
GB/s, and with memory unbounded (the compute ceiling); the weight bytes per second the measurement
implies; and the one-core figure at which the prediction equals the measurement (bisection; none
where the compute ceiling is already below the measurement, or where even the shipped figure
predicts too little). Nothing is fitted: this says which rows a per-microarchitecture one-core
default could move, and how far, before anyone looks up such a default.

    .venv/bin/python benchmarks/investigations/cpu/core_bandwidth_rows.py
        # prints the table, writes benchmarks/results/cpu/core_bandwidth_rows.json (seconds)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "benchmarks"))

import validation_set as vs  # noqa: E402

from waveidp.catalog import Hardware  # noqa: E402
from waveidp.sizing._data import rules  # noqa: E402

OUT = ROOT / "benchmarks/results/cpu/core_bandwidth_rows.json"
GRID_GB_S = (40, 30, 25, 20, 17.5, 15, 12.5, 10)
DECODE = ("decode_tokens_per_s", "run_tokens_per_s")


def _ratio(row: dict[str, Any], hw: Hardware) -> float:
    return vs.ratio(row, vs.predict(row, [hw]))


def _with(hw: Hardware, core_gb_s: float | None, *, unbounded: bool = False) -> Hardware:
    update: dict[str, Any] = {"core_bandwidth_bytes_per_s": core_gb_s * 1e9 if core_gb_s else None}
    if unbounded:
        update = {"core_bandwidth_bytes_per_s": 1e15, "memory_bandwidth_bytes_per_s": 1e16}
    return hw.model_copy(update=update)


def needed_core_gb_s(row: dict[str, Any], hw: Hardware, ceiling: float, shipped: float) -> float | None:
    """The one-core figure (GB/s) at which the row's ratio is 1: the ratio rises with it up to the
    compute ceiling, so bisection; None where no figure gets there."""
    if ceiling < 1.0 or shipped < 1.0:
        return None
    lo, hi = 0.5, 4000.0
    for _ in range(40):
        mid = (lo * hi) ** 0.5
        if _ratio(row, _with(hw, mid)) < 1.0:
            lo = mid
        else:
            hi = mid
    return round((lo * hi) ** 0.5, 2)


def rows() -> list[dict[str, Any]]:
    out = []
    default_gb_s = rules().parallel.cpu_core_bandwidth_bytes_per_s / 1e9
    for row in vs.data()["measurements"]:
        hw = vs.device(row["devices"][0])
        if hw.kind != "cpu" or row["metric"] not in DECODE or row.get("factor_source"):
            continue
        shipped = _ratio(row, hw)
        ceiling = _ratio(row, _with(hw, None, unbounded=True))
        model = vs._models().get(row["model"]) or vs.catalog.model(row["model"])
        out.append(
            {
                "id": row["id"],
                "device": hw.id,
                "threads": row.get("threads"),
                "memory_gb_s": hw.memory_bandwidth_bytes_per_s / 1e9,
                "core_gb_s_shipped": (hw.core_bandwidth_bytes_per_s or default_gb_s * 1e9) / 1e9,
                "measured": row["measured"],
                "ratio_shipped": round(shipped, 3),
                "ratio_compute_ceiling": round(ceiling, 3),
                "bound_in_model": "compute" if abs(ceiling - shipped) < 0.005 else "bandwidth",
                "ratio_at_core_gb_s": {str(g): round(_ratio(row, _with(hw, g)), 3) for g in GRID_GB_S},
                "core_gb_s_for_ratio_1": needed_core_gb_s(row, hw, ceiling, shipped),
                "params_b": round(model.params / 1e9, 3),
            }
        )
    return out


def main() -> None:
    table = rows()
    print(f"{'row':48s} {'thr':>3s} {'shipped':>7s} {'ceiling':>7s} bound      ratio at one core of (GB/s)")
    grid_head = " ".join(f"{g:>5}" for g in GRID_GB_S)
    print(f"{'':48s} {'':3s} {'':7s} {'':7s} {'':10s} {grid_head}  ratio 1 at")
    for r in table:
        grid = " ".join(f"{v:5.2f}" for v in r["ratio_at_core_gb_s"].values())
        need = r["core_gb_s_for_ratio_1"]
        print(
            f"{r['id'][:48]:48s} {r['threads'] or '':>3} {r['ratio_shipped']:7.2f} "
            f"{r['ratio_compute_ceiling']:7.2f} {r['bound_in_model']:10s} {grid}  "
            f"{f'{need:.1f} GB/s' if need else '-'}"
        )
    doc = {"command": "python benchmarks/investigations/cpu/core_bandwidth_rows.py", "rows": table}
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
