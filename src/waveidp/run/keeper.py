"""The engines of `wave up --workers N` in a process of their own.

The gateway workers are forked from `wave up` before any thread or event loop exists (as for
`wave serve --workers N`), while the engines' supervision (`Child`: health checks, restarts with
backoff) runs in an event loop. So `wave up` first forks this keeper, which starts the engines,
reports their process ids on a pipe once every one is healthy, and keeps them running until
SIGTERM. It dies with `wave up` (PR_SET_PDEATHSIG) and its engines die with it; it ignores SIGINT,
so that a Ctrl-C stops the gateway workers first and the engines after them. A worker sees an
engine go down through its own health probes (not at once, as the single-process `wave up` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import sys
import time

import orjson

from waveidp.errors import WaveError
from waveidp.parent_death import die_with_parent
from waveidp.run.supervisor import Child, start_children

STOP_GRACE_S = 15.0  # the keeper's own 10 s per engine, and some


class EngineKeeper:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.pid: int | None = None
        self.returncode: int | None = None

    def start(self) -> dict[str, int | None] | None:
        """Fork the keeper and wait until every engine is healthy: their pids, or None when
        SIGINT/SIGTERM came first. Raises `WaveError` with the keeper's error if one failed."""
        read, write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _keeper_main(self.children, write, parent)
        self.pid = pid
        os.close(write)
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            data = b""
            while not stopping and not data.endswith(b"\n"):
                readable, _, _ = select.select([read], [], [], 0.1)
                if readable:
                    chunk = os.read(read, 65536)
                    if not chunk:
                        break
                    data += chunk
            if stopping:
                return None
        finally:
            os.close(read)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if not data:
            raise WaveError(f"the engines' process exited with code {self._wait()} while starting")
        report = orjson.loads(data)
        if "error" in report:
            raise WaveError(report["error"], fix=report.get("fix"))
        return dict(report["pids"])

    def gone(self) -> str | None:
        """Why the keeper is no longer running, or None while it runs."""
        if self.pid is None or self._poll() is None:
            return None
        return f"the engines' process exited with code {self.returncode}; stopping"

    def stop(self) -> None:
        """SIGTERM the keeper (it stops its engines) and wait; SIGKILL after STOP_GRACE_S."""
        if self.pid is None or self._poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while self._poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if self._poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait()

    def _poll(self) -> int | None:
        if self.returncode is None and self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid != 0:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def _wait(self) -> int | None:
        if self.returncode is None and self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def _keeper_main(children: list[Child], report_fd: int, parent: int) -> None:
    """In the forked keeper: never returns."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        die_with_parent()
        if os.getppid() == parent:
            import uvloop

            uvloop.run(_keep(children, report_fd))
            code = 0
    except WaveError as exc:
        with contextlib.suppress(OSError):
            what = f"{exc.where}: {exc.what}" if exc.where else exc.what
            os.write(report_fd, orjson.dumps({"error": what, "fix": exc.fix}) + b"\n")
    except BaseException as exc:  # reported to the parent, which raises it
        with contextlib.suppress(OSError):
            os.write(report_fd, orjson.dumps({"error": f"the engines' process failed: {exc!r}"}) + b"\n")
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


async def _keep(children: list[Child], report_fd: int) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    started: list[Child] = []
    try:
        if not await start_children(children, stop, started):
            return
        pids = {c.name: c.proc.pid if c.proc else None for c in children}
        os.write(report_fd, orjson.dumps({"pids": pids}) + b"\n")
        os.close(report_fd)
        await stop.wait()
    finally:
        await asyncio.gather(*(c.stop() for c in started))
