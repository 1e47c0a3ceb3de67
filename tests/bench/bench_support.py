"""Helpers for the bench tests: how to run `wave` and start `wave emulate` on a free port."""

from __future__ import annotations

import subprocess
import sys
from contextlib import AbstractContextManager
from pathlib import Path

from support import running
from waveidp.loopback import free_port

WAVE = [sys.executable, "-m", "waveidp"]


def start_emulator(tmp: Path, *args: str) -> tuple[str, AbstractContextManager[subprocess.Popen]]:
    port = free_port()
    cmd = [*WAVE, "emulate", "--port", str(port), *args]
    return f"http://127.0.0.1:{port}", running(cmd, log=tmp / f"emulator-{port}.log")


def wave(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAVE, *args], capture_output=True, text=True, timeout=timeout)
