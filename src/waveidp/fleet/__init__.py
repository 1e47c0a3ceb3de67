"""The fleet file `wave.yaml`: typed models, loading with `file:line` errors, writing, detection.

from waveidp import fleet
f = fleet.load("wave.yaml")          # ConfigError naming file:line and field on bad input
r = fleet.resolve(f)                 # NotFoundError (closest ids, file:line) on unknown catalog ids
print(fleet.dump(f))
"""

from __future__ import annotations

from waveidp.fleet._atomic_file import write_atomic
from waveidp.fleet._gpus import gpu_indices
from waveidp.fleet._loading import load, loads, source_map
from waveidp.fleet._resolving import ResolvedFleet, resolve
from waveidp.fleet._writing import dump, merge_node, merge_node_text
from waveidp.fleet.hardware import device_hardware
from waveidp.fleet.models import (
    Backend,
    Calibration,
    Device,
    EngineKind,
    Fleet,
    GatewayConfig,
    Link,
    Lxc,
    ModelRouting,
    Node,
    RoutingConfig,
    RoutingPolicy,
    ServedModel,
)

__all__ = [
    "Backend",
    "Calibration",
    "Device",
    "EngineKind",
    "Fleet",
    "GatewayConfig",
    "Link",
    "Lxc",
    "ModelRouting",
    "Node",
    "ResolvedFleet",
    "RoutingConfig",
    "RoutingPolicy",
    "ServedModel",
    "device_hardware",
    "dump",
    "gpu_indices",
    "load",
    "loads",
    "merge_node",
    "merge_node_text",
    "resolve",
    "source_map",
    "write_atomic",
]
