"""A real llama-server on loopback for the CPU benchmarks (sizing_cpu.py, prompt_cache_cpu.py):
started in its own process group, waited for until /health answers, killed with its group."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from waveidp.engines.llamacpp import LlamaServerSpec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def llama_server(spec: LlamaServerSpec, extra: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """Serve `spec` (plus `extra` options); yields (URL, the command line)."""
    cmd = spec.command() + (extra or [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {proc.returncode}: {shlex.join(cmd)}")
            try:
                if httpx.get(spec.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("llama-server did not become healthy in 60 s")
            time.sleep(0.1)
        yield spec.url, shlex.join(cmd)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
