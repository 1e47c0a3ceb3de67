"""Sizing: what fits where and how fast it runs (memory math, roofline timing, verdicts, claims).

from waveidp.sizing import Deployment, SizingRequest, estimate
d = Deployment.build("llama-3.1-8b", "q4_k_m", ["rtx-5070-ti"], engine="llamacpp")
print(estimate(SizingRequest(deployment=d, concurrency=4)).verdict)
"""

from waveidp.sizing._cpu import kernel_for as cpu_kernel_for
from waveidp.sizing._cpu import table as cpu_kernel_table
from waveidp.sizing._deployment import ENGINES, Deployment, Engine
from waveidp.sizing._efficiency import (
    Efficiency,
    calibration_path,
    efficiency_for,
    efficiency_of,
    load_calibration,
    save_calibration,
)
from waveidp.sizing._engine_step import StepPlan, plan_step, prompt_steps, step_seconds
from waveidp.sizing._estimate import estimate, paged_capacity
from waveidp.sizing._memory import MemoryPlan, Placement, kv_bytes, kv_bytes_per_token_full, plan_memory
from waveidp.sizing._queueing import idle_ttft_seconds, steady_state_point
from waveidp.sizing._request import ARRIVALS, Arrival, SizingRequest
from waveidp.sizing._result import CurvePoint, Memory, Performance, SizingResult
from waveidp.sizing._roofline import PerfModel
from waveidp.sizing._schedule import ClosedLoop, PagedLoop, ServerLoop, ServerTask, loop_for
from waveidp.sizing._units import gb

__all__ = [
    "ARRIVALS",
    "ENGINES",
    "Arrival",
    "ClosedLoop",
    "CurvePoint",
    "Deployment",
    "Efficiency",
    "Engine",
    "Memory",
    "MemoryPlan",
    "PagedLoop",
    "PerfModel",
    "Performance",
    "Placement",
    "ServerLoop",
    "ServerTask",
    "SizingRequest",
    "SizingResult",
    "StepPlan",
    "calibration_path",
    "cpu_kernel_for",
    "cpu_kernel_table",
    "efficiency_for",
    "efficiency_of",
    "estimate",
    "gb",
    "idle_ttft_seconds",
    "kv_bytes",
    "kv_bytes_per_token_full",
    "load_calibration",
    "loop_for",
    "paged_capacity",
    "plan_memory",
    "plan_step",
    "prompt_steps",
    "save_calibration",
    "steady_state_point",
    "step_seconds",
]
