"""The GPU-headroom hook: a backend whose GPU memory is nearly full or whose clocks are slowed for
heat goes behind the others, in the order its policy gave; pure functions, no sockets."""

from __future__ import annotations

from waveidp.engines import adapter
from waveidp.gateway.backends import BackendState
from waveidp.gateway.routing.headroom import deprioritise, pressure
from waveidp.observe.samples import GpuSample

GIB = 2**30


def gpu(
    index: int = 0, *, free_gib: float = 40, total_gib: float = 80, reasons: int | None = 0x0
) -> GpuSample:
    return GpuSample(
        index=index,
        name="NVIDIA H100 80GB HBM3",
        source="nvml",
        memory_free_bytes=int(free_gib * GIB),
        memory_total_bytes=int(total_gib * GIB),
        clocks_event_reasons=reasons,
    )


def backend(name: str, why: str | None = None) -> BackendState:
    return BackendState(
        name=name, root=f"http://{name}", adapter=adapter("llamacpp"), models={"m"}, gpu_pressure=why
    )


def test_nearly_full_memory_counts_only_where_the_engine_has_no_kv_gauge() -> None:
    full = gpu(1, free_gib=1.6)  # 98% used
    assert pressure([gpu(0), full], engine_reports_kv=False) == "GPU 1 memory 98% used"
    assert pressure([gpu(0), full], engine_reports_kv=True) is None  # vLLM: its KV gauge says more
    assert pressure([gpu(0, free_gib=8)], engine_reports_kv=False) is None  # vLLM's 90% is not full


def test_heat_and_power_brake_slowdowns_count_the_power_cap_and_idle_do_not() -> None:
    assert (
        pressure([gpu(reasons=0x40 | 0x4)], engine_reports_kv=True)
        == "GPU 0 clocks slowed (hw_thermal_slowdown)"
    )
    assert (
        pressure([gpu(reasons=0x80)], engine_reports_kv=False)
        == "GPU 0 clocks slowed (hw_power_brake_slowdown)"
    )
    assert pressure([gpu(reasons=0x4 | 0x1)], engine_reports_kv=False) is None
    # a field the GPU does not report is no evidence either way
    assert pressure([GpuSample(index=0, name="x", source="nvml")], engine_reports_kv=False) is None
    assert pressure([], engine_reports_kv=False) is None  # a CPU backend
    both = pressure([gpu(0, reasons=0x20), gpu(1, free_gib=0.5)], engine_reports_kv=False)
    assert both == "GPU 0 clocks slowed (sw_thermal_slowdown); GPU 1 memory 99% used"  # every reason


def test_backends_under_pressure_go_last_in_the_policys_order() -> None:
    a, b, c, d = backend("a", "GPU 0 memory 99% used"), backend("b"), backend("c", "hot"), backend("d")
    assert deprioritise([a, b, c, d]) == [b, d, a, c]
    calm = [b, d]
    assert deprioritise(calm) is calm  # nothing to move: the list as the policy made it
    everyone = [a, c]
    assert deprioritise(everyone) == [a, c]  # nowhere better to go: the policy's order stands
