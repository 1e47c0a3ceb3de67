"""Shared test plumbing: child processes that always get cleaned up, and a self-signed certificate.
Free ports and waiting for a server to answer are `waveidp.loopback`'s (shared with the benchmarks);
polling a real endpoint is the synchronisation, no fixed sleeps."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest


@contextlib.contextmanager
def running(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Start a child in its own process group and kill the whole group on exit."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if log:
            out.close()  # type: ignore[union-attr]


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A one-day self-signed certificate for 127.0.0.1 (openssl), as (cert, key) paths."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def error(self) -> str:
        """The one error line (exit 2, no traceback), whitespace-joined."""
        assert self.code == 2, (self.out, self.err)
        assert "Traceback" not in self.err and self.err.count("error:") == 1, self.err
        return " ".join(self.err.split())


def wave_process(*args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`wave ARGS` in a child of this Python (WAVE_HOME: the per-test one tests/conftest.py sets),
    its output captured and 200 columns wide so that Rich does not wrap what tests read."""
    return subprocess.run(
        [sys.executable, "-m", "waveidp", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def run_cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Ran:
    """`wave ARGS` in this process, as the installed command runs it (exit codes, one-line errors)."""
    from waveidp.cli import main

    saved = sys.argv
    sys.argv = ["wave", *map(str, args)]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    cap = capsys.readouterr()
    return Ran(code, cap.out, cap.err)
