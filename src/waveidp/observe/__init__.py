"""Node telemetry: NVIDIA GPUs (NVML), Jetson (tegrastats), CPU/RAM/RAPL; one collector for the
exporter, the bench and the gateway.

    collector = NodeCollector(interval_s=5)
    exporter = start_exporter(collector, "0.0.0.0", 9401)   # /metrics in DCGM exporter's names
    collector.latest()                                        # NodeSample: typed, base units
"""

from waveidp.observe.collector import NodeCollector
from waveidp.observe.exporter import RunningExporter, start_exporter
from waveidp.observe.host import HostReader
from waveidp.observe.nvml import NvmlReader
from waveidp.observe.samples import GpuSample, HostSample, JetsonSample, NodeSample, RaplZone, SourceState
from waveidp.observe.tegrastats import TegrastatsReader, parse_line

DEFAULT_PORT = 9401

__all__ = [
    "DEFAULT_PORT",
    "GpuSample",
    "HostReader",
    "HostSample",
    "JetsonSample",
    "NodeCollector",
    "NodeSample",
    "NvmlReader",
    "RaplZone",
    "RunningExporter",
    "SourceState",
    "TegrastatsReader",
    "parse_line",
    "start_exporter",
]
