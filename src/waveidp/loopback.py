"""Servers started on this machine's loopback: a free port to start one on, and waiting until it
answers. Used by `wave up` for its embedded engine, by the tests and by the benchmark scripts."""

from __future__ import annotations

import random
import socket
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

from waveidp.errors import WaveError


class NotReady(WaveError):
    """A server did not answer in time, or its process exited first."""


_HANDED_OUT: set[int] = set()
_LOWEST = 10000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now, picked below the kernel's ephemeral
    range: a port from that range (the kernel's own pick) can be taken as the local end of any
    outgoing connection between this call and the server's bind. Never the same port twice in one
    process."""
    low = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(_LOWEST, low) if low > _LOWEST + 1000 else _kernel_pick()
        if port not in _HANDED_OUT and _bindable(port):
            _HANDED_OUT.add(port)
            return port
    raise WaveError("no free TCP port on 127.0.0.1", fix="too many servers are running")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _kernel_pick() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_http(
    url: str,
    proc: subprocess.Popen[Any] | None = None,
    *,
    timeout: float = 60.0,
    ok: tuple[int, ...] = (200,),
    headers: dict[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    log: Path | None = None,
    interval: float = 0.02,
) -> float:
    """Poll `url` until it answers with a status in `ok`; the seconds that took.

    Fails early when `proc` (the server's process) exits; `log` is named in the error.
    """
    import httpx  # here, not at the top: free_port serves device scripts that run without httpx

    fix = f"see its log {log}" if log else None
    t0 = time.monotonic()
    last = "no answer"
    with httpx.Client(timeout=2.0, headers=headers, verify=verify) as client:
        while time.monotonic() - t0 < timeout:
            if proc is not None and proc.poll() is not None:
                raise NotReady(
                    f"process exited with code {proc.returncode} before it answered", where=url, fix=fix
                )
            try:
                status = client.get(url).status_code
                if status in ok:
                    return time.monotonic() - t0
                last = f"HTTP {status}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(interval)  # polling a real endpoint is the synchronisation
    raise NotReady(f"not ready after {timeout:g}s ({last})", where=url, fix=fix)
