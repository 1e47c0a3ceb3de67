"""Servers started on this machine's loopback: a free port to start one on, and waiting until it
answers. Used by `wave up` for its embedded engine, by the tests and by the benchmark scripts."""

from __future__ import annotations

import os
import random
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from waveidp.errors import WaveError


class NotReady(WaveError):
    """A server did not answer in time, or its process exited first."""


_LOWEST = 10000
_RESERVATIONS = Path(tempfile.gettempdir()) / "wave-ports"
RESERVED_S = 120.0  # long enough for any server to bind the port it was given


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing is bound to now and that no other Wave process was
    given in the last `RESERVED_S`: between this call and the server's bind, a test run on several
    cores, a second `wave up` or an engine started by a subprocess may look for a port too (a
    reservation file per port under the temporary directory says who was first). Picked below the
    kernel's ephemeral range, from which any outgoing connection takes its local port."""
    low = _ephemeral_low()
    for _ in range(1000):
        port = random.randrange(_LOWEST, low) if low > _LOWEST + 1000 else _kernel_pick()
        if _bindable(port) and _reserve(port):
            return port
    raise WaveError("no free TCP port on 127.0.0.1", fix="too many servers are running")


def _reserve(port: int) -> bool:
    """Claim `port` for `RESERVED_S` (False: another process claimed it in that time)."""
    path = _RESERVATIONS / str(port)
    for _ in range(2):
        try:
            _RESERVATIONS.mkdir(mode=0o1777, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            return True
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime < RESERVED_S:
                    return False
                path.unlink()  # an old claim: the port was bound and freed since, or never used
            except OSError:
                return False
        except OSError:
            return True  # nowhere to keep claims (a read-only or foreign directory): the bind check alone
    return False


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

    Fails early when `proc` (the server's process) exits; `log` is named in the error, with its
    last line (the log may be gone by the time someone reads the error).
    """
    import httpx  # here, not at the top: free_port serves device scripts that run without httpx

    fix = f"see its log {log}" if log else None
    t0 = time.monotonic()
    last = "no answer"
    with httpx.Client(timeout=2.0, headers=headers, verify=verify) as client:
        while time.monotonic() - t0 < timeout:
            if proc is not None and proc.poll() is not None:
                said = _last_line(log)
                raise NotReady(
                    f"process exited with code {proc.returncode} before it answered"
                    + (f"; its log ends: {said}" if said else ""),
                    where=url,
                    fix=fix,
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


def _last_line(log: Path | None) -> str:
    try:
        lines = log.read_text(errors="replace").strip().splitlines() if log else []
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""
