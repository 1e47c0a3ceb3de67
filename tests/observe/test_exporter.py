"""`wave exporter` as a user runs it, and the promise that a slow device never stalls a scrape."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fake_pynvml import FakeNvml, h100
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from waveidp.loopback import free_port, wait_http
from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader, start_exporter
from waveidp.observe.exposition import NodeMetrics

WAVE = str(Path(sys.executable).parent / "wave")


def _families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_wave_exporter_serves_host_metrics_here_and_reports_absent_gpus(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [WAVE, "exporter", "--host", "127.0.0.1", "--port", str(port), "--interval", "0.2",
         "--tegrastats", str(tmp_path / "none"), "--hostname", "test-node"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", proc, timeout=20)
        first = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
        assert first.status_code == 200 and first.headers["content-type"].startswith("text/plain")
        texts = [first.text]
        for _ in range(3):
            time.sleep(0.25)
            texts.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}/metrics" in out
    assert "nvml" in err and "absent" in err  # the start-up lines say what is and is not read
    fams = [_families(t) for t in texts]
    stamps = [f["wave_exporter_last_sample_timestamp_seconds"][0].value for f in fams]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # sampled on the interval
    last = fams[-1]
    assert last["node_memory_MemTotal_bytes"][0].value > 0
    assert any(s.labels["mode"] == "idle" for s in last["node_cpu_seconds"])
    sources = {s.labels["source"]: s.value for s in last["wave_exporter_source_available"]}
    assert sources == {"host": 1, "nvml": 0, "rapl": sources["rapl"], "tegrastats": 0}
    assert not any(name.startswith("DCGM_") for name in last)  # no GPU here, and no zeros pretending
    assert all(s.value == 0 for s in last["wave_exporter_read_errors"])


def test_port_in_use_is_one_line_and_exit_2() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(
            [WAVE, "exporter", "--host", "127.0.0.1", "--port", str(port), "--no-gpu"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and f"127.0.0.1:{port}" in r.stderr and "--port" in r.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool (make system-deps)")
def test_exposition_passes_promtool_check_metrics_but_for_the_names_dcgm_and_node_exporter_chose() -> None:
    fake = FakeNvml([h100()])
    collector = NodeCollector(60, nvml=NvmlReader(nvml=fake), tegrastats=TegrastatsReader("/nonexistent"))
    try:
        collector.open()
        fake.events.put((0, 79))
        deadline = time.monotonic() + 10
        while not collector.sample().gpus[0].xid_counts:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(NodeMetrics(collector, stale_after_s=60))
        text = generate_latest(registry).decode()
    finally:
        collector.close()
    assert "wave_gpu_xid_errors_total{" in text and "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{" in text
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    problems = [line for line in (lint.stdout + lint.stderr).splitlines() if line.strip()]
    # the linter's only objections are to names kept for compatibility: DCGM's labels (modelName,
    # Hostname, UUID) and node_exporter's memory fields; syntax, types and units would fail here
    allowed = ("label names should be written in 'snake_case' not 'camelCase'",)
    for p in problems:
        assert p.endswith(allowed) or (p.startswith("node_memory_") and "camelCase" in p), p


class _GatedNvml(FakeNvml):
    """An H100 whose power reading hangs while the gate is closed, as a wedged GPU's NVML calls do."""

    def __init__(self) -> None:
        super().__init__([h100()])
        self.gate = threading.Event()
        self.gate.set()

    def nvmlDeviceGetPowerUsage(self, h):  # type: ignore[no-untyped-def]
        self.gate.wait(30)
        return super().nvmlDeviceGetPowerUsage(h)


def test_a_hanging_device_read_never_blocks_a_scrape() -> None:
    nvml = _GatedNvml()
    collector = NodeCollector(
        0.1, nvml=NvmlReader(nvml=nvml, watch_xid=False), tegrastats=TegrastatsReader("/nonexistent")
    )
    running = start_exporter(collector, "127.0.0.1", 0, stale_after_s=1.0)
    url = f"http://127.0.0.1:{running.port}/metrics"
    try:
        assert "DCGM_FI_DEV_POWER_USAGE" in _families(httpx.get(url, timeout=5).text)
        nvml.gate.clear()  # the sampler thread now hangs inside NVML
        time.sleep(0.3)
        t0 = time.perf_counter()
        during = _families(httpx.get(url, timeout=5).text)
        assert time.perf_counter() - t0 < 1.0
        assert "DCGM_FI_DEV_POWER_USAGE" in during  # the last sample, still fresh enough
        time.sleep(1.2)
        stale = _families(httpx.get(url, timeout=5).text)
        # a sample older than stale_after is no longer served as current; the timestamp says why
        assert "DCGM_FI_DEV_POWER_USAGE" not in stale and "node_memory_MemTotal_bytes" not in stale
        age = time.time() - stale["wave_exporter_last_sample_timestamp_seconds"][0].value
        assert age > 1.0
        nvml.gate.set()
        deadline = time.monotonic() + 10
        while "DCGM_FI_DEV_POWER_USAGE" not in _families(httpx.get(url, timeout=5).text):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        nvml.gate.set()
        running.close()


def test_wave_exporter_help_lists_the_options() -> None:
    r = subprocess.run([WAVE, "exporter", "--help"], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "COLUMNS": "200"})  # fmt: skip
    assert r.returncode == 0
    for option in ("--port", "--interval", "--no-gpu", "--tegrastats", "--hostname", "--once"):
        assert option in r.stdout
