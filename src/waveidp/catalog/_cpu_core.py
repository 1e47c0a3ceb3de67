"""Peak arithmetic of one CPU core from what /proc/cpuinfo says (`data/cpu_cores.yaml`).

Used for a CPU the hardware catalog does not list: `wave fleet detect` writes the result into the
node's device (`flop_per_cycle`), and sizing multiplies it by the cores and the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from waveidp.catalog._models import Dtype


@dataclass(frozen=True)
class CoreFacts:
    vendor: str
    flags: frozenset[str]
    name: str = ""
    family: int | None = None
    model: int | None = None


@cache
def _rules() -> dict[str, list[dict[str, Any]]]:
    text = resources.files("waveidp.catalog").joinpath("data/cpu_cores.yaml").read_text(encoding="utf-8")
    data: dict[str, list[dict[str, Any]]] = yaml.safe_load(text)
    return data


def _holds(rule: dict[str, Any], core: CoreFacts) -> bool:
    if "vendor" in rule and rule["vendor"] != core.vendor:
        return False
    if "family" in rule and rule["family"] != core.family:
        return False
    model = core.model if core.model is not None else -1
    if "model_from" in rule and model < rule["model_from"]:
        return False
    if "model_below" in rule and not 0 <= model < rule["model_below"]:
        return False
    if "name" in rule and not re.search(rule["name"], core.name, re.IGNORECASE):
        return False
    return set(rule.get("flags", ())) <= core.flags


def core_flop_per_cycle(core: CoreFacts) -> tuple[dict[Dtype, float], list[str]]:
    """FLOP per cycle per core for fp32, bf16 and int8 (OP), and the rules' sources."""
    rules = _rules()
    fp32_rule = next(r for r in rules["fp32"] if _holds(r, core))
    fp32 = float(fp32_rule["fp32"])
    out: dict[Dtype, float] = {"fp32": fp32}
    sources = [f"fp32 {fp32:g}: {fp32_rule['source']}"]
    others: tuple[Dtype, ...] = ("bf16", "int8")
    for dtype in others:
        rule = next(r for r in rules[dtype] if _holds(r, core))
        value = float(rule["per_cycle"]) if "per_cycle" in rule else fp32 * float(rule["times_fp32"])
        out[dtype] = value
        sources.append(f"{dtype} {value:g}: {rule['source']}")
    return out, sources
