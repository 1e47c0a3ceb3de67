"""Supervise local engine processes: start one, wait until healthy, restart it after a crash with
exponential backoff, keep its output in a log file, stop it (and its process group) cleanly;
start several in order (`start_children`, used by `wave up` and by its engine keeper)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from waveidp.errors import WaveError
from waveidp.parent_death import die_with_parent

log = logging.getLogger("waveidp.run")


class ChildFailed(WaveError):
    """A supervised process did not become healthy."""


@dataclass
class Child:
    name: str
    command: Sequence[str]
    health_url: str
    log_path: Path
    start_timeout_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    stable_after_s: float = 60.0  # a run this long resets the backoff
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    pids: list[int] = field(default_factory=list)
    on_down: Callable[[str], None] | None = None  # told at once when the process dies
    on_up: Callable[[], None] | None = None  # told when a restarted process is healthy again
    _stopping: bool = False
    _watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start and wait until healthy; then keep it running in the background."""
        await self._spawn()
        await self.wait_healthy()
        self._watch = asyncio.create_task(self._keep_running())

    async def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.command)}\n".encode()
            )
            out.flush()
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self.pids.append(self.proc.pid)
        log.info("%s started (pid %d), log %s", self.name, self.proc.pid, self.log_path)

    async def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        timeout = aiohttp.ClientTimeout(total=2.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline:
                if self.proc.returncode is not None:
                    raise ChildFailed(
                        f"{self.name} exited with code {self.proc.returncode} while starting",
                        fix=f"see its log {self.log_path}",
                    )
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(self.health_url) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.1)  # polling interval of a real endpoint, not a synchronisation sleep
        raise ChildFailed(
            f"{self.name} not healthy at {self.health_url} after {self.start_timeout_s:g}s",
            fix=f"see its log {self.log_path}",
        )

    async def _keep_running(self) -> None:
        backoff = self.backoff_initial_s
        while not self._stopping:
            assert self.proc is not None
            started = time.monotonic()
            code = await self.proc.wait()
            if self._stopping:
                return
            if self.on_down is not None:
                self.on_down(f"process exited with code {code}; restarting")
            if time.monotonic() - started > self.stable_after_s:
                backoff = self.backoff_initial_s
            log.warning("%s exited with code %s; restarting in %.1fs", self.name, code, backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.backoff_max_s)
            if self._stopping:
                return
            self.restarts += 1
            await self._spawn()
            try:
                await self.wait_healthy()
            except ChildFailed as exc:
                log.error("%s", exc)
                continue
            if self.on_up is not None:
                self.on_up()

    async def stop(self, grace_s: float = 10.0) -> None:
        self._stopping = True
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        log.info("%s stopped", self.name)


async def start_children(children: list[Child], stop: asyncio.Event, started: list[Child]) -> bool:
    """Start each child and wait until it is healthy, in order; False if `stop` was set first.
    Every child begun is appended to `started` (the caller stops them)."""
    for c in children:
        starting = asyncio.create_task(c.start())
        waiting = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        started.append(c)
        if stop.is_set():
            starting.cancel()
            return False
        starting.result()
    return True
