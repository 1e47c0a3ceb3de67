"""What the rules need to know about each node, derived once from the fleet and the hardware catalog."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from waveidp.catalog._models import Hardware
from waveidp.fleet.hardware import device_hardware
from waveidp.fleet.models import Fleet, Node
from waveidp.plan._rules import Rules

HardwareLookup = Callable[[str], Hardware]


@dataclass(frozen=True)
class Gpu:
    hardware: Hardware
    memory_gib: float
    classes: frozenset[str]

    @property
    def cc(self) -> tuple[int, int] | None:
        return parse_cc(self.hardware.compute_capability)


@dataclass(frozen=True)
class NodeFacts:
    node: Node
    nvidia: tuple[Gpu, ...]
    intel_accel: tuple[str, ...]
    arch: str
    hardware: tuple[Hardware, ...] = field(default=())

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def max_gpu_gib(self) -> float:
        return max((g.memory_gib for g in self.nvidia), default=0.0)

    def describe_gpus(self) -> str:
        return ", ".join(g.hardware.name for g in self.nvidia) or "no NVIDIA GPU"


def parse_cc(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    m = re.match(r"^(?:sm_?)?(\d+)\.?(\d)?", text.strip())
    if not m:
        return None
    major, minor = m.group(1), m.group(2)
    if minor is None and len(major) >= 2:  # "120" / "sm_120" -> 12.0
        major, minor = major[:-1], major[-1]
    return int(major), int(minor or 0)


def classes_of(hardware_id: str, rules: Rules) -> frozenset[str]:
    return frozenset(c for c, pattern in rules.hardware_classes.items() if re.search(pattern, hardware_id))


def node_facts(fleet: Fleet, lookup: HardwareLookup, rules: Rules) -> list[NodeFacts]:
    out = []
    for node in fleet.nodes:
        nvidia: list[Gpu] = []
        intel: list[str] = []
        ids: list[Hardware] = []
        arm = False
        for dev in node.devices:
            hw = device_hardware(dev, node, base=lookup(dev.hardware))  # an unlisted one as detected
            ids.append(hw)
            arm = arm or bool(re.search(rules.arm_hardware, hw.id))
            vendor = hw.vendor.lower()
            if hw.kind in ("gpu", "soc") and "nvidia" in vendor:
                gib = dev.memory_gib or hw.memory_bytes / 2**30
                nvidia.extend(Gpu(hw, gib, classes_of(hw.id, rules)) for _ in range(dev.count))
            elif hw.kind in ("npu", "gpu") and "intel" in vendor:
                intel.append(hw.name)
        out.append(NodeFacts(node, tuple(nvidia), tuple(intel), "aarch64" if arm else "x86_64", tuple(ids)))
    return out
