"""`--workers N` (`wave serve`, `wave up`): N gateway processes on one port.

Each worker is forked once the command has checked its options, runs the worker function it was
given (`waveidp.gateway.compose.serve` on the worker's socket) and exits when that returns; it never
returns into the command's code. It listens on its own socket bound with SO_REUSEPORT; the kernel
spreads new connections over the workers' accept queues by a hash of the connection. Not one socket
shared by all workers: uvloop accepts every pending connection in a loop, so whichever worker wakes
first takes a whole burst of new connections and keeps them (keep-alive) while the other idles. Not
uvicorn's own supervisor: it builds the app in each child from an import string and owns the
signals, while the gateway builds its app from the CLI's options and must flush its audit log before
it exits.

The parent keeps no socket open that accepts, makes a private directory for prometheus-client's
multiprocess mode (so `/metrics` of any worker shows the totals of all), starts the workers, prints
the ready line once every worker has said it listens (a byte on a pipe), starts a new worker in
place of one that dies, and on SIGINT/SIGTERM stops them all (SIGKILL after 10 s) and removes the
directory. The directory's name carries the parent's pid, so that the next start removes those of
parents killed with SIGKILL. A worker dies with its parent (PR_SET_PDEATHSIG), so a killed parent
leaves no orphans.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import psutil

from waveidp.errors import WaveError
from waveidp.parent_death import die_with_parent

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when it is imported
METRICS_DIR_PREFIX = "wave-metrics-"  # then the parent's pid and "-": a dead parent's dir is stale
_STALE_NAME = re.compile(re.escape(METRICS_DIR_PREFIX) + r"(\d+)-")
STOP_GRACE_S = 10.0
READY_TIMEOUT_S = 60.0
RESTART_MIN_INTERVAL_S = 1.0
log = logging.getLogger("waveidp.gateway")

# What a worker runs: serve on `sock` (listening already), call `ready(routable)` once it accepts
# connections (`routable`: a backend is up), return when stopped (SIGTERM/SIGINT).
WorkerMain = Callable[[socket.socket, Callable[[bool], None]], None]


def bound_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    """A TCP socket bound to host:port, with SO_REUSEPORT for workers (several processes listen on
    one port); a clear `WaveError` when another program holds the port."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise WaveError(
            f"the gateway could not listen on {host}:{port}: {exc.strerror}",
            fix="is the port in use? try --port",
        ) from None
    return sock


def listen_socket(host: str, port: int, reuse_port: bool = True) -> socket.socket:
    sock = bound_socket(host, port, reuse_port)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def remove_stale_metrics_dirs(root: str | None = None) -> list[str]:
    """Remove the metrics directories whose parent process is gone (a `kill -9` gives it no chance
    to remove its own); returns the removed paths. A directory whose pid is alive again (reused)
    is kept: it is never wrong to keep one."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(root or tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        owner = _STALE_NAME.match(entry.name)
        if owner is None:
            continue
        try:  # another gateway may remove its own directory meanwhile: skip that one, not the rest
            mine = entry.is_dir(follow_symlinks=False) and entry.stat().st_uid == os.getuid()
        except OSError:
            continue
        if mine and not psutil.pid_exists(int(owner.group(1))):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


@dataclass
class _Worker:
    index: int
    pid: int
    ready_r: int
    ready: bool = False
    routable: bool = False  # a backend was up when it said it listens
    started: float = field(default_factory=time.monotonic)
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class Supervisor:
    """Fork `count` workers from this process, each running the worker function, and keep them
    running.

    Forked after the command has imported everything and checked its options, before any thread,
    event loop or database connection exists: a worker starts serving in ~0.1 s and shares the
    parent's imported code copy-on-write. `run` returns in the parent only, once stopped; a worker
    exits when its function returns.
    """

    def __init__(
        self, count: int, host: str, port: int, needed: Callable[[], str | None] | None = None
    ) -> None:
        """`needed`, when given, is asked while the workers run: it returns why something they
        need is gone (`wave up`'s engines), and the supervisor then stops them and raises."""
        self.count = count
        self.needed = needed
        self.gone: str | None = None
        self.host, self.port = host, port
        remove_stale_metrics_dirs()
        self.metrics_dir = tempfile.mkdtemp(prefix=f"{METRICS_DIR_PREFIX}{os.getpid()}-")
        self.workers: list[_Worker] = []
        self.stopping = False
        self._port_hold: socket.socket | None = None
        self._parent = os.getpid()
        self._main: WorkerMain | None = None
        self._handlers: dict[int, Any] = {}  # the signal handlers before `run` set its own

    def _fork(self, index: int) -> None:
        """Start worker `index` (in the new process, run it and exit)."""
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            self._worker(ready_w)
        os.close(ready_w)
        worker = _Worker(index, pid, ready_r)
        if index < len(self.workers):
            self.workers[index] = worker
        else:
            self.workers.append(worker)

    def _worker(self, ready_w: int) -> NoReturn:
        """In a forked worker: run the worker function on a socket of its own, then exit (exit code
        2 with the error's line for a `WaveError`, as the command would)."""
        code = 1
        try:
            for w in self.workers:
                with contextlib.suppress(OSError):
                    os.close(w.ready_r)
            if self._port_hold is not None:
                self._port_hold.close()
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)
            die_with_parent()
            if os.getppid() != self._parent:  # it died before this worker could ask to die with it
                raise SystemExit(0)
            os.environ[METRICS_DIR_ENV] = self.metrics_dir
            # prometheus-client picks its value class when imported (in the parent, single-process);
            # no metric exists yet in this process, so the multiprocess one can still be chosen.
            from prometheus_client import values

            values.ValueClass = values.get_value_class()

            def ready(routable: bool) -> None:
                with contextlib.suppress(OSError):
                    os.write(ready_w, b"1" if routable else b"0")
                    os.close(ready_w)

            assert self._main is not None
            self._main(listen_socket(self.host, self.port), ready)
            code = 0
        except WaveError as exc:
            sys.stderr.write(f"error: {exc}\n")
            code = exc.exit_code
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            traceback.print_exc()
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _hold_port(self) -> None:
        """Bind (without listening) so that a port taken by another program fails here, once, clearly;
        a socket that does not listen gets no connections."""
        self._port_hold = bound_socket(self.host, self.port)

    def run(self, on_ready: Callable[[bool], None], main: WorkerMain) -> None:
        """Fork the workers, each running `main`; call `on_ready(routable)` once every one listens
        (`routable`: one of them had a backend up), and supervise them until SIGINT/SIGTERM.
        Raises `WaveError` if a worker fails before it is ready, or when `needed` says something
        the workers need is gone."""
        self._main = main
        self._hold_port()

        def stop(signum: int, frame: object) -> None:
            self.stopping = True

        self._handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for i in range(self.count):
                self._fork(i)
            self._wait_ready()
            if not self.stopping:
                on_ready(any(w.routable for w in self.workers))
            self._watch()
            if self.gone is not None:
                raise WaveError(self.gone)
        finally:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)
            if self._port_hold is not None:
                self._port_hold.close()
            self._stop_all()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping and not all(w.ready for w in self.workers):
            waiting = {w.ready_r: w for w in self.workers if not w.ready}
            readable, _, _ = select.select(list(waiting), [], [], 0.1)
            for fd in readable:
                said = os.read(fd, 1)
                waiting[fd].ready, waiting[fd].routable = said in (b"0", b"1"), said == b"1"
            for w in self.workers:
                code = w.poll()
                if code is not None and not w.ready:
                    raise WaveError(
                        f"gateway worker {w.index} exited with code {code} while starting "
                        "(its error is above)",
                        fix="fix what it reported; `wave serve` with --workers 1 shows the same error",
                    )
            if time.monotonic() > deadline:
                raise WaveError(f"gateway workers not ready after {READY_TIMEOUT_S:.0f} s")
        for w in self.workers:
            os.close(w.ready_r)

    def _watch(self) -> None:
        while not self.stopping:
            time.sleep(0.1)
            if self.needed is not None and (gone := self.needed()) is not None:
                self.gone, self.stopping = gone, True
                break
            for i, w in enumerate(self.workers):
                code = w.poll()
                if code is None or self.stopping:
                    continue
                log.warning(
                    "gateway worker %d (pid %d) exited with code %s; starting a new one", i, w.pid, code
                )
                self._forget(w.pid)
                if time.monotonic() - w.started < RESTART_MIN_INTERVAL_S:
                    time.sleep(RESTART_MIN_INTERVAL_S)
                self._fork(i)
                self._await_one(self.workers[i])

    def _await_one(self, w: _Worker) -> None:
        """A replacement worker: wait (bounded, and not past a stop) for its ready byte."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.stopping and time.monotonic() < deadline and w.poll() is None:
            readable, _, _ = select.select([w.ready_r], [], [], 0.1)
            if readable:
                w.ready = os.read(w.ready_r, 1) in (b"0", b"1")
                break
        os.close(w.ready_r)

    def _forget(self, pid: int) -> None:
        """Drop a dead worker's live gauges; its counters stay in the totals."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, self.metrics_dir)

    def _stop_all(self) -> None:
        running = [w for w in self.workers if w.poll() is None]
        for w in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while any(w.poll() is None for w in running) and time.monotonic() < deadline:
            time.sleep(0.02)
        for w in running:
            if w.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(w.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(w.pid, 0)
