"""The Jetson parser on real tegrastats lines (Orin Nano, AGX Orin, AGX Xavier, TX2) and the reader
on a real subprocess that prints them."""

from __future__ import annotations

import stat
import sys
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader
from waveidp.observe.exposition import NodeMetrics
from waveidp.observe.tegrastats import MIB, parse_line, to_samples

ENTRIES = yaml.safe_load((Path(__file__).parent / "data/tegrastats.yaml").read_text())
ORIN_NANO_LOAD, ORIN_NANO_IDLE = ENTRIES[0]["line"], ENTRIES[1]["line"]


def _line(board: str) -> str:
    return next(str(e["line"]) for e in ENTRIES if e["board"].startswith(board))


def test_every_published_line_parses_with_its_source_cited() -> None:
    boards = " | ".join(e["board"] for e in ENTRIES)
    for generation in ("Orin Nano", "AGX Orin", "AGX Xavier", "TX2"):
        assert generation in boards
    for e in ENTRIES:
        assert e["source"].startswith("https://github.com/"), e["board"]
        stats = parse_line(e["line"])
        assert stats is not None, e["board"]
        assert stats.ram_used_mib and stats.ram_total_mib and stats.ram_used_mib < stats.ram_total_mib
        assert stats.gpu_percent is not None and stats.rails_mw and stats.temps_c


def test_orin_nano_under_load_maps_to_dcgm_fields() -> None:
    stats = parse_line(ORIN_NANO_LOAD)
    assert stats is not None
    assert (stats.ram_used_mib, stats.ram_total_mib, stats.swap_used_mib) == (6185, 7620, 851)
    assert stats.cpu_percent == (15, 11, 14, 13, 11, 8)
    assert (stats.emc_percent, stats.emc_mhz, stats.gpu_percent, stats.gpu_mhz) == (43, 2133, 63, 621)
    assert stats.temps_c == {
        "cpu": 53.968,
        "soc2": 52.437,
        "soc0": 50.75,
        "gpu": 53.343,
        "tj": 53.968,
        "soc1": 51.656,
    }
    assert stats.rails_mw == {"VDD_IN": 12479, "VDD_CPU_GPU_CV": 4667, "VDD_SOC": 2817}
    gpu, jetson = to_samples(stats, "NVIDIA Jetson Orin Nano Developer Kit")
    assert gpu.unified_memory and gpu.source == "tegrastats"
    assert gpu.memory_used_bytes == 6185 * MIB and gpu.memory_free_bytes == (7620 - 6185) * MIB
    assert (gpu.util_percent, gpu.sm_clock_mhz, gpu.memory_clock_mhz, gpu.temp_c) == (63, 621, 2133, 53.343)
    # the Orin Nano's GPU shares VDD_CPU_GPU_CV with the CPU and CV engines: no GPU-only power figure
    assert gpu.power_w is None
    assert jetson.rails_mw["VDD_IN"] == 12479


def test_orin_nano_without_root_has_no_clocks_but_still_load_and_memory() -> None:
    stats = parse_line(ORIN_NANO_IDLE)
    assert stats is not None
    assert stats.gpu_percent == 0 and stats.gpu_mhz is None and stats.emc_percent is None
    assert stats.swap_total_mib == 16384 and stats.rails_mw["VDD_IN"] == 4824


def test_agx_orin_drops_powered_down_sensors_and_unconnected_rails() -> None:
    stats = parse_line(_line("Jetson AGX Orin"))
    assert stats is not None
    assert len(stats.cpu_percent) == 12 and stats.gpu_mhz == 0  # GR3D_FREQ 0%@[0,0]: GPU rail-gated
    assert "GPU" not in stats.temps_c and "CV0" not in stats.temps_c  # printed as -256C
    assert stats.temps_c["tj"] == 44.343
    assert "NC" not in stats.rails_mw and stats.rails_mw["VDD_GPU_SOC"] == 2340
    gpu, _ = to_samples(stats, "AGX Orin")
    assert gpu.temp_c is None and gpu.power_w is None  # VDD_GPU_SOC is GPU + SoC


def test_xavier_and_tx2_rails_without_units_and_a_gpu_only_rail() -> None:
    xavier = parse_line(_line("Jetson AGX Xavier"))
    assert xavier is not None
    assert xavier.rails_mw == {"GPU": 463, "CPU": 618, "SOC": 2936, "CV": 0, "VDDRQ": 309, "SYS5V": 3306}
    assert xavier.temps_c["GPU"] == 30.5 and xavier.emc_mhz is None
    gpu, _ = to_samples(xavier, "AGX Xavier")
    assert gpu.power_w == pytest.approx(0.463) and gpu.temp_c == 30.5
    tx2 = parse_line(_line("Jetson TX2"))
    assert tx2 is not None
    assert tx2.swap_total_mib is None and tx2.rails_mw["VDD_SYS_GPU"] == 153
    assert tx2.rails_avg_mw["VDD_SYS_GPU"] == 158
    assert to_samples(tx2, "TX2")[0].power_w == pytest.approx(0.153)


def test_lines_without_fields_are_not_samples() -> None:
    assert parse_line("") is None
    assert parse_line("tegrastats: permission denied") is None


def _fake_tegrastats(tmp_path: Path, lines: list[str]) -> Path:
    """An executable that prints recorded lines as tegrastats does (one per --interval), then waits."""
    data = tmp_path / "lines.txt"
    data.write_text("".join(line + "\n" for line in lines))
    script = tmp_path / "tegrastats"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys, time\n"
        "ms = int(sys.argv[sys.argv.index('--interval') + 1])\n"
        f"for line in open({str(data)!r}):\n"
        "    sys.stdout.write(line); sys.stdout.flush(); time.sleep(ms / 1000)\n"
        "time.sleep(60)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_reader_follows_a_tegrastats_process_and_the_exporter_shows_the_jetson(tmp_path: Path) -> None:
    script = _fake_tegrastats(tmp_path, [ORIN_NANO_IDLE, "garbage line", ORIN_NANO_LOAD])
    reader = TegrastatsReader(str(script), interval_s=0.1, model="NVIDIA Jetson Orin Nano Developer Kit")
    collector = NodeCollector(0.1, tegrastats=reader, nvml=NvmlReader(nvml=_NoNvml()))
    try:
        collector.open()
        assert collector.sources["tegrastats"].available
        assert reader.read_first(timeout_s=10)
        deadline = time.monotonic() + 10
        while reader.lines < 3 and time.monotonic() < deadline:
            time.sleep(0.02)  # the fake prints a line every 0.1 s; bounded wait for the third
        sample = collector.sample()
        assert reader.unparsed == 1
        (gpu,) = sample.gpus
        assert gpu.util_percent == 63 and gpu.name == "NVIDIA Jetson Orin Nano Developer Kit"
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeMetrics(collector, stale_after_s=60))
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert not reader.running
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    util = fams["DCGM_FI_DEV_GPU_UTIL"].samples[0]
    assert util.value == 63 and util.labels["gpu"] == "0"
    assert util.labels["modelName"] == "NVIDIA Jetson Orin Nano Developer Kit"
    assert fams["DCGM_FI_DEV_FB_USED"].samples[0].value == 6185
    rails = {s.labels["rail"]: s.value for s in fams["wave_jetson_rail_power_watts"].samples}
    assert rails["VDD_IN"] == pytest.approx(12.479)
    sources = {s.labels["source"]: s.value for s in fams["wave_exporter_source_available"].samples}
    assert sources["tegrastats"] == 1 and sources["nvml"] == 0


def test_no_tegrastats_is_a_clean_absence(tmp_path: Path) -> None:
    reader = TegrastatsReader(str(tmp_path / "missing"))
    state = reader.open()
    assert not state.available and "not found" in state.detail
    assert reader.read() is None
    reader.close()


class _NoNvml:
    """pynvml as on a machine without the NVIDIA driver: nvmlInit raises."""

    class NVMLError(Exception):
        pass

    def nvmlInit(self) -> None:
        raise self.NVMLError("NVML Shared Library Not Found")
