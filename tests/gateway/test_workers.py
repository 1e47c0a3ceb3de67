"""`wave serve --workers 2` against the running gateway: one port, `/metrics` with the totals of
every worker, and SIGTERM / SIGINT / a killed parent leave no worker behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from gateway_support import API_KEY, auth

CHAT = "/v1/chat/completions"
BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
CLIENTS = 16  # keep-alive connections; all 16 hashed onto one of 2 workers: p = 2 * 2**-16


def start(gateway: Callable, upstream: str | None, *args: str) -> Any:
    """The gateway (`--workers 2` unless args say otherwise) once its parent has printed the ready
    line: every worker listens."""
    g = gateway([upstream] if upstream else [], *(args or ("--workers", "2")))
    deadline = time.monotonic() + 20
    while "gateway ready" not in g.log_text():
        assert time.monotonic() < deadline and g.proc.poll() is None, g.log_text()
        time.sleep(0.02)  # polling the log file
    return g


def workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def connected_workers(workers: list[psutil.Process], port: int) -> set[int]:
    """The workers that hold an established client connection on the gateway's port."""
    return {
        w.pid
        for w in workers
        for c in w.net_connections(kind="tcp")
        if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == port
    }


def requests_total(text: str) -> float:
    return sum(
        float(m.group(1))
        for m in re.finditer(r'^wave_requests_total\{[^}]*status="200"[^}]*\} (\S+)$', text, re.M)
    )


def test_metrics_show_the_totals_of_all_workers(fake_upstream: Callable, gateway: Callable) -> None:
    up = fake_upstream("u", model=["m"])
    g = start(gateway, up.url)
    workers = workers_of(g.proc)
    assert len(workers) == 2
    clients = [httpx.Client(base_url=g.url, headers=auth(), timeout=10) for _ in range(CLIENTS)]
    try:
        for c in clients:
            assert c.post(CHAT, json=BODY).status_code == 200
        # both workers hold some of the connections, so both answered requests
        assert connected_workers(workers, port_of(g.url)) == {w.pid for w in workers}
        for c in clients:
            for _ in range(2):
                assert c.post(CHAT, json=BODY).status_code == 200
    finally:
        for c in clients:
            c.close()
    # each scrape on a new connection, whichever worker answers, shows all 48 requests
    scrapes = [httpx.get(g.url + "/metrics", timeout=10).text for _ in range(6)]
    assert [requests_total(t) for t in scrapes] == [3.0 * CLIENTS] * 6
    assert 'wave_backend_healthy{backend="upstream0"} 1.0' in scrapes[0]


def test_gateway_workers_in_the_fleet_file(
    fake_upstream: Callable, gateway: Callable, tmp_path: Path
) -> None:
    up = fake_upstream("u", model=["m"])
    cfg = tmp_path / "wave.yaml"
    cfg.write_text(f"""
nodes:
  - name: local
    backends:
      - {{name: u, engine: openai, url: "{up.url}", models: [m]}}
gateway:
  workers: 2
""")
    g = start(gateway, None, "--config", str(cfg))
    assert "2 workers" in g.log_text() and len(workers_of(g.proc)) == 2
    assert httpx.post(g.url + CHAT, json=BODY, headers=auth(), timeout=10).status_code == 200


def test_sigterm_and_sigint_stop_every_worker_and_remove_the_metrics_dir(
    fake_upstream: Callable, gateway: Callable
) -> None:
    up = fake_upstream("u", model=["m"])
    for sig in (signal.SIGTERM, signal.SIGINT):
        g = start(gateway, up.url)
        workers = workers_of(g.proc)
        (own,) = metrics_dirs(g.proc.pid)
        assert len(workers) == 2
        assert {f.name.split("_")[-1] for f in own.glob("counter_*.db")} <= {f"{w.pid}.db" for w in workers}
        os.kill(g.proc.pid, sig)  # the parent only, as a service manager would
        assert g.proc.wait(timeout=15) == 0
        _, alive = psutil.wait_procs(workers, timeout=5)
        assert alive == []
        assert not own.exists()


def metrics_dirs(pid: int, root: Path | None = None) -> set[Path]:
    """The metrics directories of the gateway whose parent is `pid` (other gateways may be running)."""
    return set((root or Path(tempfile.gettempdir())).glob(f"wave-metrics-{pid}-*"))


def test_a_killed_parent_takes_its_workers_with_it_and_the_next_start_removes_its_metrics_dir(
    fake_upstream: Callable, gateway: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a temp dir of their own: any gateway that starts sweeps the stale dirs of its temp dir, and
    # tests running beside this one would remove the killed parent's before it is looked at
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    up = fake_upstream("u", model=["m"])
    g = start(gateway, up.url)
    workers = workers_of(g.proc)
    (left,) = metrics_dirs(g.proc.pid, tmp)
    g.proc.kill()
    g.proc.wait(timeout=5)
    _, alive = psutil.wait_procs(workers, timeout=15)
    assert alive == []
    assert left.is_dir()  # SIGKILL: the parent could not remove it
    again = start(gateway, up.url)
    assert not left.exists()
    # a live gateway's dir is kept
    (current,) = metrics_dirs(again.proc.pid, tmp)
    assert current.is_dir()


def test_a_worker_that_dies_is_replaced(fake_upstream: Callable, gateway: Callable) -> None:
    up = fake_upstream("u", model=["m"])
    g = start(gateway, up.url)
    first = workers_of(g.proc)
    first[0].kill()
    first[0].wait(timeout=5)
    replaced = False
    deadline = time.monotonic() + 20
    while not replaced and time.monotonic() < deadline:
        now = {w.pid for w in workers_of(g.proc)}
        replaced = len(now) == 2 and first[0].pid not in now
        time.sleep(0.05)  # polling the process table
    assert replaced
    # every new connection is answered, by the survivor or the replacement
    assert all(
        httpx.post(g.url + CHAT, json=BODY, headers=auth(), timeout=10).status_code == 200 for _ in range(10)
    )


def test_a_port_in_use_is_one_clear_error(fake_upstream: Callable, tmp_path: Path) -> None:
    from gateway_support import WAVE

    up = fake_upstream("u", model=["m"])
    port = up.url.rsplit(":", 1)[1]  # taken by the upstream (no SO_REUSEPORT there)
    r = subprocess.run(
        [str(WAVE), "serve", "--port", port, "--upstream", up.url, "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "WAVE_API_KEY": API_KEY},
    )
    assert r.returncode == 2
    assert f"could not listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("bad", ["0", "65"])
def test_workers_out_of_range_is_refused(bad: str, tmp_path: Path) -> None:
    from gateway_support import WAVE

    r = subprocess.run(
        [str(WAVE), "serve", "--upstream", "http://127.0.0.1:9", "--workers", bad],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "--workers" in r.stderr
