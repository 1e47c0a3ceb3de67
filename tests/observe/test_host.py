"""The host collector on this machine for real (CPU, RAM, load); RAPL where readable."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waveidp.observe.exposition import host_families
from waveidp.observe.host import POWERCAP, HostReader, rapl_zones, read_rapl


def test_host_reads_this_machine() -> None:
    reader = HostReader()
    host, _rapl = reader.open()
    assert host.available
    first = reader.read()
    assert first.cpu_percent is None  # busy share needs two reads
    assert first.cpu_count == psutil.cpu_count()
    assert {mode for _, mode in first.cpu_seconds} >= {"user", "system", "idle"}
    assert 0 < first.memory_available_bytes <= first.memory_total_bytes
    assert first.memory_total_bytes == psutil.virtual_memory().total
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        pass  # keep one core busy so the second read sees CPU time move
    second = reader.read()
    assert second.cpu_percent is not None and 0 < second.cpu_percent <= 100
    assert second.cpu_seconds[("0", "user")] >= first.cpu_seconds[("0", "user")]
    assert second.load == pytest.approx(os.getloadavg(), abs=5)


def test_host_exposition_uses_node_exporter_names() -> None:
    h = HostReader()
    h.open()
    sample = h.read()

    class _One:
        def collect(self):  # type: ignore[no-untyped-def]
            return host_families(sample)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_One())  # type: ignore[arg-type]
    fams = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    cpu = fams["node_cpu_seconds"]
    assert cpu.type == "counter" and {s.name for s in cpu.samples} == {"node_cpu_seconds_total"}
    assert {(s.labels["cpu"], s.labels["mode"]) for s in cpu.samples} >= {("0", "idle"), ("0", "user")}
    assert fams["node_memory_MemTotal_bytes"].samples[0].value == sample.memory_total_bytes
    assert "node_memory_MemAvailable_bytes" in fams and "node_load1" in fams


def test_rapl_on_this_machine_is_read_or_cleanly_absent() -> None:
    reader = HostReader()
    _host, rapl = reader.open()
    zones = read_rapl(rapl_zones(POWERCAP))
    if zones:
        assert rapl.available and reader.read().rapl
    else:
        assert not rapl.available and str(POWERCAP) in rapl.detail
        assert reader.read().rapl == ()


def _zone(root: Path, name: str, label: str, energy_uj: int, mode: int = 0o400) -> None:
    z = root / name
    z.mkdir(parents=True)
    (z / "name").write_text(label + "\n")
    (z / "energy_uj").write_text(f"{energy_uj}\n")
    (z / "max_energy_range_uj").write_text("262143328850\n")
    (z / "energy_uj").chmod(mode)


def test_rapl_zones_in_powercap_layout(tmp_path: Path) -> None:
    """The sysfs layout of a two-socket Intel host (package, core and dram subzones, psys)."""
    _zone(tmp_path, "intel-rapl:0", "package-0", 1_500_000)
    _zone(tmp_path, "intel-rapl:0:0", "core", 700_000)
    _zone(tmp_path, "intel-rapl:0:2", "dram", 200_000)
    _zone(tmp_path, "intel-rapl:1", "package-1", 2_500_000)
    _zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)
    (tmp_path / "intel-rapl-mmio:0").mkdir()  # the mmio duplicate of package-0 has no counter here
    reader = HostReader(tmp_path)
    _host, rapl = reader.open()
    assert rapl.available and "package-0" in rapl.detail
    zones = {(z.name, z.index): z for z in reader.read().rapl}
    assert set(zones) == {("package", "0"), ("core", "0"), ("dram", "2"), ("package", "1"), ("psys", "2")}
    assert zones[("package", "1")].energy_j == 2.5
    assert zones[("package", "0")].max_energy_j == pytest.approx(262143.32885)
    assert zones[("package", "0")].path == str(tmp_path / "intel-rapl:0")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-0000 file anyway")
def test_unreadable_rapl_counters_are_absent_not_an_error(tmp_path: Path) -> None:
    _zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000, mode=0)
    _host, rapl = HostReader(tmp_path).open()
    assert not rapl.available and "needs root" in rapl.detail
