"""Peak arithmetic of one NVIDIA SM from what NVML says about the GPU (`data/gpu_sms.yaml`).

Used for a GPU the hardware catalog does not list: `wave fleet detect` writes the result into the
node's device (`flop_per_cycle`, per SM), and sizing multiplies it by the SMs and the clock.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any, cast

import yaml

from waveidp.catalog._models import Dtype


@cache
def _table() -> dict[str, Any]:
    text = resources.files("waveidp.catalog").joinpath("data/gpu_sms.yaml").read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def _cc(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def architecture(compute_capability: str) -> dict[str, Any]:
    """The table's entry for `compute_capability`: its own, else the highest listed one below it of
    the same major, else the highest one below it (the lowest listed for an older GPU)."""
    archs: dict[str, Any] = _table()["architectures"]
    want = _cc(compute_capability)
    listed = sorted(archs, key=_cc)
    below = [cc for cc in listed if _cc(cc) <= want]
    same_major = [cc for cc in below if _cc(cc)[0] == want[0]]
    pick = (same_major or below or listed)[-1]
    return cast(dict[str, Any], archs[pick])


def fp32_lanes(compute_capability: str) -> int:
    """FP32 units per SM (NVML's CUDA core count divided by this is the SM count)."""
    return int(architecture(compute_capability)["fp32_lanes"])


def sm_flop_per_cycle(compute_capability: str, name: str) -> dict[Dtype, float]:
    """Dense FLOP (int8/int4: OP) per clock per SM for each dtype this GPU runs, for a board named
    `name` (GeForce boards run FP32-accumulate tensor math at half rate; GTX 16 has no tensor cores)."""
    table = _table()
    arch = architecture(compute_capability)
    if "no_tensor" in arch and re.search(table["no_tensor_names"], name, re.IGNORECASE):
        rates = dict(arch["no_tensor"])
    else:
        rates = dict(arch["flop_per_cycle"])
        if re.search(table["geforce_names"], name, re.IGNORECASE):
            rates |= arch.get("geforce", {})
    return {cast(Dtype, k): float(v) for k, v in rates.items()}


def rated_clock_share(name: str) -> float:
    """The share of NVML's maximum SM clock that NVIDIA's peak figures are given at for `name`."""
    table = _table()
    if re.search(table["geforce_names"], name, re.IGNORECASE):
        return float(table["geforce_clock_share"])
    return 1.0


def source(compute_capability: str) -> str:
    arch = architecture(compute_capability)
    return f"{arch['name']}: {arch['source']}"
