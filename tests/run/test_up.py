"""`wave up` end to end with the real llama-server and SmolLM2-135M-Instruct."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import running
from waveidp.loopback import free_port, wait_http

pytestmark = pytest.mark.engine
WAVE = Path(sys.executable).with_name("wave")
MODEL = "smollm2-135m-instruct"
KEY = "up-test-key-0123456789abcdefghijklmnop"  # passes check_strength


@contextlib.contextmanager
def wave_up(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen, dict]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(WAVE), "up", "--port", str(port), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "up.err", "wb"),  # noqa: SIM115
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready line: printed once the gateway answers /ready
        assert line, f"wave up exited: {(tmp_path / 'up.err').read_text()}"
        yield proc, orjson.loads(line)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def test_wave_up_serves_the_embedded_model_and_stops_cleanly(tmp_path: Path) -> None:
    with wave_up(tmp_path, env={"WAVE_API_KEY": KEY}) as (proc, info):
        assert info["models"] == [MODEL] and info["api_key"] == KEY
        assert info["key_source"] == "WAVE_API_KEY"
        child_pids = [p for p in info["children"].values() if p]
        assert _alive(child_pids)
        client = openai.OpenAI(base_url=info["url"], api_key=KEY, max_retries=0, timeout=60)
        assert [m.id for m in client.models.list()] == [MODEL]
        r = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=8
        )
        assert r.choices[0].message.content and r.usage is not None and r.usage.completion_tokens > 0
        pieces = [
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "Count to three"}],
                max_tokens=8,
                stream=True,
            )
            if c.choices
        ]
        assert "".join(pieces).strip()
        c = client.completions.create(model=MODEL, prompt="The capital of France is", max_tokens=4)
        assert c.choices[0].text
        e = client.embeddings.create(model=MODEL, input=["hello", "world"])
        assert len(e.data) == 2 and len(e.data[0].embedding) == 576
        metrics = httpx.get(info["url"].removesuffix("/v1") + "/metrics").text
        assert 'wave_requests_total{backend="embedded",model="smollm2-135m-instruct",status="200"}' in metrics
        # this machine's own telemetry, from the collector in the gateway's process (no exporter)
        node = socket.gethostname()
        deadline = time.monotonic() + 10
        while f'wave_node_telemetry_up{{node="{node}"}} 1.0' not in metrics:
            assert time.monotonic() < deadline, metrics
            time.sleep(0.2)
            metrics = httpx.get(info["url"].removesuffix("/v1") + "/metrics").text
        totals = [
            s.value
            for f in text_string_to_metric_families(metrics)
            for s in f.samples
            if s.name == "wave_node_memory_total_bytes" and s.labels == {"node": node}
        ]
        assert totals == [psutil.virtual_memory().total]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        deadline = time.monotonic() + 5
        while _alive(child_pids):
            assert time.monotonic() < deadline, f"llama-server left running: {_alive(child_pids)}"
            time.sleep(0.05)


def test_wave_up_generates_and_keeps_a_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    os.environ.pop("WAVE_API_KEY", None)
    with wave_up(tmp_path, env=env) as (proc, info):
        key_file = Path(info["key_source"])
        assert key_file.read_text().strip() == info["api_key"] and info["api_key"].startswith("wave-")
        assert key_file.stat().st_mode & 0o777 == 0o600
        base = info["url"].removesuffix("/v1")
        assert httpx.get(base + "/v1/models").status_code == 401
        assert httpx.get(
            base + "/v1/models", headers={"authorization": f"Bearer {info['api_key']}"}
        ).is_success
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0


def test_crashed_engine_is_restarted(tmp_path: Path) -> None:
    with wave_up(tmp_path, env={"WAVE_API_KEY": KEY}) as (proc, info):
        base = info["url"].removesuffix("/v1")
        (old,) = info["children"].values()
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # the supervisor starts a new llama-server after a short backoff
            children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True) if c.pid != old]
            if children:
                break
            assert time.monotonic() < deadline, "no new llama-server after the crash"
            time.sleep(0.05)
        wait_http(base + "/ready", timeout=30)  # out of rotation (503) until the new one is healthy
        r = httpx.post(
            base + "/v1/chat/completions",
            headers={"authorization": f"Bearer {KEY}"},
            timeout=30,
            json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        )
        assert r.status_code == 200, r.text
        log = Path(info["logs"]) / "embedded.log"
        assert log.read_text().count("starting:") == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not _alive(children)


def test_wave_up_with_a_fleet_file_starts_local_embedded_and_connects_remote(tmp_path: Path) -> None:
    far_port, local_port = free_port(), free_port()
    fake = Path(__file__).parent.parent / "gateway" / "fake_upstream.py"
    with running(
        [sys.executable, str(fake), "--port", str(far_port), "--name", "far", "--model", "m1"],
        log=tmp_path / "far.log",
    ) as far:
        wait_http(f"http://127.0.0.1:{far_port}/health", proc=far)
        cfg = tmp_path / "wave.yaml"
        cfg.write_text(f"""
version: 1
nodes:
  - name: here
    address: 127.0.0.1
    backends:
      - {{name: local-smol, engine: embedded, url: "http://127.0.0.1:{local_port}", models: [smol-local]}}
  - name: elsewhere
    address: 192.0.2.10
    backends:
      - {{name: far, engine: vllm, url: "http://127.0.0.1:{far_port}", models: [m1]}}
""")
        with wave_up(tmp_path, "--config", str(cfg), env={"WAVE_API_KEY": KEY}) as (proc, info):
            assert info["models"] == ["m1", "smol-local"] and list(info["children"]) == ["local-smol"]
            base = info["url"].removesuffix("/v1")
            for model, backend in (("smol-local", "local-smol"), ("m1", "far")):
                r = httpx.post(
                    base + "/v1/chat/completions",
                    headers={"authorization": f"Bearer {KEY}"},
                    timeout=30,
                    json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
                )
                assert r.status_code == 200 and r.headers["x-wave-backend"] == backend
            child = info["children"]["local-smol"]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            assert not _alive([child])
        assert far.poll() is None  # a remote backend is connected to, never managed


def test_killed_wave_up_leaves_no_engine_behind(tmp_path: Path) -> None:
    with wave_up(tmp_path, env={"WAVE_API_KEY": KEY}) as (proc, info):
        children = [p for p in info["children"].values() if p]
        proc.kill()  # no chance to clean up: the engine must still go (parent-death signal)
        proc.wait(5)
        deadline = time.monotonic() + 10
        while _alive(children):
            assert time.monotonic() < deadline, f"llama-server orphaned: {_alive(children)}"
            time.sleep(0.05)


def _gateway_workers(proc: subprocess.Popen) -> tuple[list[psutil.Process], psutil.Process]:
    """`wave up --workers N`'s children: the gateway workers, and the process keeping the engines."""
    children = psutil.Process(proc.pid).children()
    (keeper,) = [c for c in children if any(g.name() == "llama-server" for g in c.children())]
    return [c for c in children if c.pid != keeper.pid], keeper


def _chat(client: httpx.Client) -> int:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
    return client.post("/v1/chat/completions", json=body).status_code


def _gone(procs: list[psutil.Process], pids: list[int]) -> None:
    _, alive = psutil.wait_procs(procs, timeout=15)
    assert alive == []
    deadline = time.monotonic() + 10
    while _alive(pids):
        assert time.monotonic() < deadline, f"left running: {_alive(pids)}"
        time.sleep(0.05)  # polling the process table


def test_wave_up_with_two_gateway_workers(tmp_path: Path) -> None:
    with wave_up(tmp_path, "--workers", "2", env={"WAVE_API_KEY": KEY}) as (proc, info):
        assert info["workers"] == 2 and info["models"] == [MODEL]
        workers, keeper = _gateway_workers(proc)
        assert len(workers) == 2 and [g.pid for g in keeper.children()] == list(info["children"].values())
        base = info["url"].removesuffix("/v1")
        port = int(base.rsplit(":", 1)[1])
        clients = [
            httpx.Client(base_url=base, headers={"authorization": f"Bearer {KEY}"}, timeout=30)
            for _ in range(16)
        ]
        try:
            assert [_chat(c) for c in clients] == [200] * 16
            # 16 keep-alive connections over 2 workers: all on one has p = 2 * 2**-16
            connected = {
                w.pid
                for w in workers
                for c in w.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
            }
            assert connected == {w.pid for w in workers}
        finally:
            for c in clients:
                c.close()
        # whichever worker answers the scrape, it shows the requests of both
        metric = 'wave_requests_total{backend="embedded",model="smollm2-135m-instruct",status="200"} 16.0'
        assert all(metric in httpx.get(base + "/metrics").text for _ in range(4))
        proc.send_signal(signal.SIGINT)  # the parent only, as `kill -INT` would
        assert proc.wait(30) == 0
        _gone([*workers, keeper], list(info["children"].values()))


def test_gateway_workers_in_the_fleet_file_and_ctrl_c(tmp_path: Path) -> None:
    local_port = free_port()
    cfg = tmp_path / "wave.yaml"
    cfg.write_text(f"""
version: 1
nodes:
  - name: here
    address: 127.0.0.1
    backends:
      - {{name: smol, engine: embedded, url: "http://127.0.0.1:{local_port}", models: [smol-local]}}
gateway:
  workers: 2
""")
    with wave_up(tmp_path, "--config", str(cfg), env={"WAVE_API_KEY": KEY}) as (proc, info):
        assert info["workers"] == 2
        workers, keeper = _gateway_workers(proc)
        assert len(workers) == 2
        r = httpx.post(
            info["url"] + "/chat/completions",
            headers={"authorization": f"Bearer {KEY}"},
            timeout=30,
            json={"model": "smol-local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        assert r.status_code == 200 and r.headers["x-wave-backend"] == "smol"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
        assert proc.wait(30) == 0
        _gone([*workers, keeper], list(info["children"].values()))


def test_killed_wave_up_with_workers_leaves_nothing_behind(tmp_path: Path) -> None:
    with wave_up(tmp_path, "--workers", "2", env={"WAVE_API_KEY": KEY}) as (proc, info):
        workers, keeper = _gateway_workers(proc)
        proc.kill()
        proc.wait(5)
        _gone([*workers, keeper], list(info["children"].values()))
