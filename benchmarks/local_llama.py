"""A real llama-server on loopback for the CPU benchmarks (sizing_cpu.py,
investigations/prompt_cache_cpu.py): started in its own process group, waited for until /health
answers, killed with its group."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.loopback import wait_http


@contextmanager
def llama_server(spec: LlamaServerSpec, extra: list[str] | None = None) -> Iterator[tuple[str, str]]:
    """Serve `spec` (plus `extra` options); yields (URL, the command line)."""
    cmd = spec.command() + (extra or [])
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(spec.url + "/health", proc, timeout=60)
        yield spec.url, shlex.join(cmd)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
