"""An exporter's answer read back into a NodeSample (what the gateway keeps per node): wave exporter's
own exposition round-trips to the sample it was made from, and dcgm-exporter's page (older field
name, no FB_TOTAL, DCGM's blank sentinel) and node_exporter's host series read into the same type."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from fake_pynvml import FakeNvml, geforce, h100
from prometheus_client import CollectorRegistry, generate_latest

from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader
from waveidp.observe.exposition import DCGM_GAUGES, ENERGY, NodeMetrics
from waveidp.observe.samples import GpuSample
from waveidp.observe.scrape import has_figures, merge, parse_exposition


def _exposition(c: NodeCollector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NodeMetrics(c, stale_after_s=60))
    return generate_latest(registry).decode()


def test_wave_exporter_exposition_reads_back_into_the_sample_it_came_from() -> None:
    nvml = NvmlReader(nvml=FakeNvml([h100(), geforce()]))
    c = NodeCollector(60, nvml=nvml, tegrastats=TegrastatsReader("/nonexistent"))
    c.hostname = "gpu-box"
    try:
        s = c.open()
        text = _exposition(c)
    finally:
        c.close()
    p = parse_exposition(text)
    assert p.gpus == s.gpus  # every field, bytes exact although the series are in MiB
    assert p.host == s.host
    assert (p.taken_at, p.hostname, p.driver_version) == (s.taken_at, "gpu-box", s.driver_version)
    assert {k: v.available for k, v in p.sources.items()} == {k: v.available for k, v in s.sources.items()}
    big = p.gpus[0]
    assert big.memory_headroom_share == pytest.approx(big.memory_free_bytes / big.memory_total_bytes)
    assert big.clocks_event_reasons == 0x40 | 0x4


# dcgm-exporter 3.x with its default counters: no FB_TOTAL, the older throttle-reasons name, a
# field the GPU does not report sent as DCGM's int32 blank, and a second GPU that is a MIG slice.
DCGM_PAGE = (Path(__file__).parent / "data" / "dcgm_exporter.prom").read_text()

NODE_EXPORTER_PAGE = """\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 100
node_cpu_seconds_total{cpu="0",mode="user"} 50
node_cpu_seconds_total{cpu="1",mode="idle"} 120
node_cpu_seconds_total{cpu="1",mode="user"} 30
# TYPE node_memory_MemTotal_bytes gauge
node_memory_MemTotal_bytes 6.7108864e+10
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 3.3554432e+10
# TYPE node_memory_MemFree_bytes gauge
node_memory_MemFree_bytes 1.6777216e+10
# TYPE node_memory_SwapTotal_bytes gauge
node_memory_SwapTotal_bytes 0
# TYPE node_memory_SwapFree_bytes gauge
node_memory_SwapFree_bytes 0
# TYPE node_load1 gauge
node_load1 1.5
# TYPE node_load5 gauge
node_load5 1.25
# TYPE node_load15 gauge
node_load15 1
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"} 1e+10
"""


def test_dcgm_exporter_page_reads_into_gpu_samples() -> None:
    s = parse_exposition(DCGM_PAGE, received_at=1234.5)
    assert s.taken_at == 1234.5  # no wave_exporter timestamp: dated by its arrival
    assert (s.hostname, s.driver_version, s.host) == ("dgx1", "535.104.05", None)
    a100, mig = s.gpus
    assert a100.memory_used_bytes == 38936 * 2**20
    assert a100.memory_total_bytes == (38936 + 1024) * 2**20  # used + free where FB_TOTAL is absent
    assert a100.memory_headroom_share == pytest.approx(1024 / (38936 + 1024))
    assert a100.memory_temp_c is None  # the blank sentinel is "not reported", not 2147483632 C
    assert (a100.temp_c, a100.power_w) == (88, 391.5)
    assert a100.clocks_event_reasons == 0x20  # read from the older name
    assert mig.name == "NVIDIA A100-SXM4-40GB MIG 3g.20gb" and mig.memory_total_bytes == 19000 * 2**20


def test_node_exporter_host_series_and_a_merged_node() -> None:
    before = parse_exposition(NODE_EXPORTER_PAGE)
    assert before.host is not None and before.host.cpu_percent is None  # nothing to compare yet
    later = NODE_EXPORTER_PAGE.replace('"0",mode="user"} 50', '"0",mode="user"} 60')
    later = later.replace('"0",mode="idle"} 100', '"0",mode="idle"} 110')
    after = parse_exposition(later, previous=before)
    assert after.host is not None
    assert after.host.cpu_percent == pytest.approx(50.0)  # 10 s busy of 20 s
    assert after.host.memory_used_bytes == 33_554_432_000 and after.host.load == (1.5, 1.25, 1.0)
    assert after.host.cpu_count == 2
    node = merge([parse_exposition(DCGM_PAGE), after])
    assert node.host == after.host and len(node.gpus) == 2 and node.hostname == "dgx1"
    assert has_figures(node)


def test_a_page_without_figures_and_a_page_that_is_not_an_exposition() -> None:
    only_meta = "# TYPE wave_exporter_samples counter\nwave_exporter_samples_total 3\n"
    assert not has_figures(parse_exposition(only_meta))
    with pytest.raises(ValueError):
        parse_exposition("DCGM_FI_DEV_FB_USED{gpu=0 oops\n")


def test_every_gpu_field_is_either_exported_or_derived() -> None:
    # a field added to GpuSample without a series would silently never reach the gateway
    exported = {f.attribute for f in (*DCGM_GAUGES, ENERGY)}
    labels = {"index", "name", "source", "uuid", "pci_bus_id", "device", "unified_memory", "xid_counts"}
    assert {f.name for f in dataclasses.fields(GpuSample)} - labels == exported
