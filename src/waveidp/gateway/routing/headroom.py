"""GPU headroom: a backend whose GPU memory is nearly full, or whose GPU is slowing its clocks for
heat or a power brake, goes behind the others in whatever order the policy chose.

`pressure` is worked out off the request path, each time the node's telemetry is read
(`gateway/health.py`), and kept on the backend (`BackendState.gpu_pressure`); `deprioritise`, on
the request path, only reads it. A backend with no telemetry, or whose node's last read failed,
has none: it is ranked as without this signal. When every candidate is under pressure the
policy's order stands (there is nowhere better to go).
"""

from __future__ import annotations

from collections.abc import Iterable

from waveidp.gateway.backends import BackendState
from waveidp.observe.samples import CLOCKS_EVENT_REASONS, SLOWDOWN_REASONS, GpuSample

# GPU memory share in use from which a GPU counts as full: the GPUMemoryPressure alert's ratio
# (render/data/defaults.yaml). vLLM takes 0.90 by design and stays below it.
MEMORY_FULL_RATIO = 0.97
THROTTLING = sum(SLOWDOWN_REASONS)  # as one bitmask


def pressure(gpus: Iterable[GpuSample], engine_reports_kv: bool) -> str | None:
    """Why these GPUs (the ones one backend runs on) have no headroom, every reason, or None.

    GPU memory counts only where the engine reports no KV-cache gauge of its own: an engine that
    does (vLLM, SGLang) allocates most of the GPU up front, and its gauge says more.
    """
    reasons = []
    for g in gpus:
        share = g.memory_headroom_share
        if not engine_reports_kv and share is not None and share < 1 - MEMORY_FULL_RATIO:
            reasons.append(f"GPU {g.index} memory {100 * (1 - share):.0f}% used")
        slowed = (g.clocks_event_reasons or 0) & THROTTLING
        if slowed:
            names = ", ".join(name for bit, name in CLOCKS_EVENT_REASONS.items() if slowed & bit)
            reasons.append(f"GPU {g.index} clocks slowed ({names})")
    return "; ".join(reasons) or None


def deprioritise(ranked: list[BackendState]) -> list[BackendState]:
    """`ranked` with the backends under GPU pressure moved behind the others, each group in the
    policy's order."""
    if not any(b.gpu_pressure for b in ranked):
        return ranked
    free = [b for b in ranked if not b.gpu_pressure]
    if not free:
        return ranked
    return free + [b for b in ranked if b.gpu_pressure]
