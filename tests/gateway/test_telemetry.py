"""The gateway reads its nodes' telemetry off the request path: a real `wave exporter` scraped over
127.0.0.1 by a real `wave serve`, its figures on the gateway's /metrics and /ready; an exporter that
hangs never holds up a request; one that goes away shows as stale, and comes back. In process: the
sample the console reads (`Gateway.node_samples`) and the GPU-pressure hint routing acts on, from an
exporter serving an H100 (NVML stood in at its boundary, as in tests/observe)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from gateway_support import API_KEY, WAVE, auth
from prometheus_client.parser import text_string_to_metric_families

from support import running
from waveidp.console.fleet_view import device_rows
from waveidp.engines import adapter
from waveidp.gateway.backends import BackendState
from waveidp.gateway.exchange import route
from waveidp.gateway.health import read_node
from waveidp.gateway.request_info import parse_request
from waveidp.gateway.state import Gateway
from waveidp.gateway.telemetry import NodeTelemetry
from waveidp.loopback import free_port, wait_http
from waveidp.observe import NodeCollector, NvmlReader, TegrastatsReader, start_exporter
from waveidp.security.guard import Authenticator, Guard

sys.path.insert(0, str(Path(__file__).parents[1] / "observe"))
from fake_pynvml import FakeNvml, h100


def _series(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _node_value(metrics: str, name: str, node: str) -> float | None:
    for (n, labels), v in _series(metrics).items():
        if n == name and ("node", node) in labels:
            return v
    return None


def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.1)


def _exporter(port: int, log: Path) -> list[str]:
    return [str(WAVE), "exporter", "--host", "127.0.0.1", "--port", str(port), "--interval", "0.3",
            "--tegrastats", str(log.parent / "no-tegrastats"), "--hostname", "box"]  # fmt: skip


def test_gateway_scrapes_a_real_exporter_and_shows_a_node_gone_as_stale(
    tmp_path: Path, fake_upstream
) -> None:
    up = fake_upstream("a")
    exporter_port, gateway_port = free_port(), free_port()
    with socket.socket() as hung:  # accepts connections (the kernel's backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        hung_port = hung.getsockname()[1]
        fleet = tmp_path / "wave.yaml"
        fleet.write_text(
            "version: 1\n"
            "gateway: {telemetry_interval_s: 0.3}\n"
            "nodes:\n"
            f"  - name: box\n    exporter: http://127.0.0.1:{exporter_port}\n"
            f"    backends: [{{name: a, engine: vllm, url: '{up.url}', models: [fake-model]}}]\n"
            f"  - name: hung\n    exporter: http://127.0.0.1:{hung_port}/metrics\n"
        )
        exporter_log = tmp_path / "exporter.log"
        with contextlib.ExitStack() as stack:
            exporter = stack.enter_context(running(_exporter(exporter_port, exporter_log), log=exporter_log))
            wait_http(f"http://127.0.0.1:{exporter_port}/metrics", proc=exporter, timeout=20)
            cmd = [WAVE, "serve", "--config", fleet, "--port", str(gateway_port)]
            log = tmp_path / "gateway.log"
            gw = stack.enter_context(running(cmd, log=log, env={"WAVE_API_KEY": API_KEY}))
            url = f"http://127.0.0.1:{gateway_port}"
            wait_http(url + "/ready", proc=gw, timeout=20)

            def metrics() -> str:
                return httpx.get(url + "/metrics", timeout=5).text

            def telemetry() -> dict[str, str]:
                return orjson.loads(httpx.get(url + "/ready", timeout=5).content)["telemetry"]

            _until(lambda: _node_value(metrics(), "wave_node_telemetry_up", "box") == 1, "box read")
            text = metrics()
            total = _node_value(text, "wave_node_memory_total_bytes", "box")
            exported = _series(httpx.get(f"http://127.0.0.1:{exporter_port}/metrics").text)
            assert total == exported[("node_memory_MemTotal_bytes", ())]
            assert 0 <= (_node_value(text, "wave_node_telemetry_age_seconds", "box") or -1) < 5
            assert _node_value(text, "wave_node_telemetry_up", "hung") == 0
            assert _node_value(text, "wave_node_memory_total_bytes", "hung") is None

            # a request is answered at once while the hung exporter's reads wait out their 2 s
            body = {"model": "fake-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
            for _ in range(3):
                t0 = time.monotonic()
                r = httpx.post(url + "/v1/chat/completions", json=body, headers=auth(), timeout=10)
                assert r.status_code == 200 and time.monotonic() - t0 < 1.5

            assert telemetry()["box"].startswith("read ")
            timed_out = f"no telemetry yet: http://127.0.0.1:{hung_port}/metrics: timed out"
            _until(lambda: telemetry()["hung"] == timed_out, "the hung exporter's read timed out")

            exporter.terminate()
            exporter.wait(timeout=10)
            _until(lambda: _node_value(metrics(), "wave_node_telemetry_up", "box") == 0, "box stale")
            text = metrics()
            assert _node_value(text, "wave_node_memory_total_bytes", "box") is None  # not current
            assert (_node_value(text, "wave_node_telemetry_age_seconds", "box") or 0) > 0
            stale = telemetry()["box"]
            assert stale.startswith("no telemetry since ") and "cannot connect" in stale

            again = stack.enter_context(running(_exporter(exporter_port, exporter_log), log=exporter_log))
            wait_http(f"http://127.0.0.1:{exporter_port}/metrics", proc=again, timeout=20)
            _until(lambda: _node_value(metrics(), "wave_node_telemetry_up", "box") == 1, "box back")
            assert telemetry()["box"].startswith("read ")
            logged = log.read_text()
            assert logged.count("telemetry of node box: no telemetry since") == 1  # once, not per round
            assert "telemetry of node box is back" in logged


def test_node_samples_and_gpu_pressure_from_an_exporter_of_an_h100() -> None:
    collector = NodeCollector(
        0.2, nvml=NvmlReader(nvml=FakeNvml([h100()])), tegrastats=TegrastatsReader("/x")
    )
    exporter = start_exporter(collector, "127.0.0.1", 0)
    hot = BackendState(
        name="hot", root="http://hot", adapter=adapter("llamacpp"), models={"m"}, node="box", gpus=(0,)
    )
    cool = BackendState(
        name="cool", root="http://cool", adapter=adapter("llamacpp"), models={"m"}, node="other"
    )
    box = NodeTelemetry("box", (f"http://127.0.0.1:{exporter.port}",))
    gw = Gateway([hot, cool], Guard(Authenticator()), telemetry=[box])
    info = parse_request("chat", b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}')

    async def scenario() -> None:
        await gw.start()
        try:
            assert gw.node_samples == {"box": None}  # nothing read yet
            await read_node(gw, box)
            sample = gw.node_samples["box"]
            assert sample is not None and sample.hostname == collector.hostname
            (g,) = sample.gpus
            assert (g.name, g.memory_used_bytes, g.temp_c) == ("NVIDIA H100 80GB HBM3", 80_000 * 2**20, 67)
            assert (
                hot.gpu_pressure == "GPU 0 memory 99% used; GPU 0 clocks slowed (hw_thermal_slowdown)"
                and cool.gpu_pressure is None
            )
            assert all(route(gw, info)[0] is cool for _ in range(4))  # round after round, hot goes last
            (row,) = device_rows(None, gw.node_samples)  # what the console's fleet page shows
            assert (row.node, row.hardware, row.memory_used_bytes) == ("box", g.name, g.memory_used_bytes)
            exporter._server.shutdown()  # the exporter goes away (its port closes)
            exporter._server.server_close()
            await read_node(gw, box)
            assert gw.node_samples == {"box": None}  # down: no figures shown as current
            assert box.sample is sample and box.state() == "down"  # the last one is kept, with why
            assert hot.gpu_pressure is None  # and routing stops acting on it
        finally:
            await gw.close()

    try:
        asyncio.run(scenario())
    finally:
        exporter.collector.close()


def test_wave_ups_own_collector_stuck_on_a_device_shows_the_node_down() -> None:
    collector = NodeCollector(
        0.2, nvml=NvmlReader(nvml=FakeNvml([h100()])), tegrastats=TegrastatsReader("/x")
    )
    here = NodeTelemetry("here", local=True, collector=collector)
    gw = Gateway([], Guard(Authenticator()), telemetry=[here])

    async def read() -> None:
        await read_node(gw, here)

    try:
        asyncio.run(read())
        assert here.status_line() == "no telemetry yet: the node collector has no sample yet"
        fresh = collector.open()
        asyncio.run(read())
        assert gw.node_samples == {"here": fresh}
        # the collector's thread hangs in NVML: its last sample ages past the exporter's own limit
        collector._latest = dataclasses.replace(fresh, taken_at=fresh.taken_at - 60)
        asyncio.run(read())
        assert gw.node_samples == {"here": None}
        assert (
            "last sample is from" in here.status_line() and "a device stopped answering" in here.status_line()
        )
    finally:
        collector.close()
