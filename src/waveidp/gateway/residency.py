"""A backend whose engine is loaded when a request needs it and unloaded when idle (load on demand).

The gateway knows this much of it: whether the engine is loaded, how long until it would be
(`ready_in_s`: the figure the predicted-latency policy adds to the backend's forecast, so that a
warm backend wins while one meets the SLO), and how to wake it. Starting and stopping the engine
are the caller's (`load` and `unload`, given by `run.deployer`).

    unloaded --wake--> loading --engine healthy--> loaded --idle--> unloading --> unloaded
                          \\--failed or stopped--> unloaded (the error kept for the next request)

A request that finds the engine not loaded wakes it and waits at most `load_timeout_s` (from its
arrival); past that it is answered 503 `model_loading` with a Retry-After of the load's expected
remainder, and the load goes on for the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal

from waveidp.errors import ApiError

State = Literal["unloaded", "loading", "loaded", "unloading"]
MIN_READY_S = 0.05  # a load past its prediction is "almost ready", never "ready"


@dataclass(eq=False)
class Residency:
    load: Callable[[], Awaitable[None]]  # starts the engine; returns once it is healthy
    unload: Callable[[], Awaitable[None]]  # stops it
    predicted_load_s: float  # before any load was seen: from file size and the disk's read rate
    load_timeout_s: float = 30.0  # the longest a request waits for a load
    idle_unload_s: float | None = None  # unloaded after this long without a request
    state: State = "unloaded"
    since: float = field(default_factory=time.monotonic)  # when `state` last changed
    last_used: float = field(default_factory=time.monotonic)  # the last request's arrival
    loads: int = 0
    last_load_s: float | None = None  # how long the last load took
    error: str | None = None  # why the last load failed
    waiting: int = 0  # requests waiting for the load now
    _loading: asyncio.Task[None] | None = field(default=None, repr=False)
    _unloading: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def loaded(self) -> bool:
        return self.state == "loaded"

    @property
    def expected_load_s(self) -> float:
        """The last load's duration once one was seen (the disk cache and the engine's own start
        are in it), else the prediction."""
        return self.last_load_s if self.last_load_s is not None else self.predicted_load_s

    def ready_in_s(self, now: float) -> float:
        """Seconds until the engine could take a request: 0 when loaded."""
        if self.state == "loaded":
            return 0.0
        if self.state == "loading":
            return max(MIN_READY_S, self.expected_load_s - (now - self.since))
        return self.expected_load_s

    def _set(self, state: State) -> None:
        self.state = state
        self.since = time.monotonic()

    def wake(self) -> asyncio.Task[None]:
        """The load in progress, or a new one: a task that ends once the engine is loaded."""
        if self._loading is None or self._loading.done():
            self._loading = asyncio.ensure_future(self._load())
            self._loading.add_done_callback(_retrieve)
        return self._loading

    async def _load(self) -> None:
        if self._unloading is not None:
            await asyncio.shield(self._unloading)
        if self.state == "loaded":
            return
        self._set("loading")
        started = time.monotonic()
        try:
            await self.load()
        except BaseException as exc:
            self.error = str(exc) or type(exc).__name__
            self._set("unloaded")
            raise
        self.last_load_s = time.monotonic() - started
        self.loads += 1
        self.error = None
        self._set("loaded")

    async def sleep(self) -> None:
        """Unload (the caller has checked that nothing is in flight)."""
        if self.state != "loaded":
            return
        self._set("unloading")
        self._unloading = asyncio.ensure_future(self.unload())
        try:
            await asyncio.shield(self._unloading)
        finally:
            self._unloading = None
            self._set("unloaded")

    def idle_for(self, now: float) -> float:
        return now - self.last_used

    def describe(self, now: float) -> str:
        if self.state == "loaded":
            return "loaded"
        if self.state == "loading":
            return f"loading for {now - self.since:.1f}s (ready in ~{self.ready_in_s(now):.1f}s)"
        if self.state == "unloading":
            return "unloading"
        failed = f"; the last load failed: {self.error}" if self.error else ""
        return f"not loaded (loads on demand in ~{self.expected_load_s:.1f}s){failed}"

    async def wait_loaded(self, model: str, backend: str, arrived: float) -> None:
        """Wake the engine and wait for it, at most `load_timeout_s` after the request `arrived`
        (monotonic); 503 `model_loading` (Retry-After) past that, 503 `model_load_failed` if the
        load failed."""
        task = self.wake()
        left = self.load_timeout_s - (time.monotonic() - arrived)
        self.waiting += 1
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=max(0.0, left))
        except TimeoutError:
            now = time.monotonic()
            ready = self.ready_in_s(now)
            raise ApiError(
                503,
                f"model '{model}' is loading on backend {backend} (for {now - self.since:.1f}s, ready "
                f"in ~{ready:.1f}s); a request waits at most {self.load_timeout_s:g}s for a load: "
                "retry after the Retry-After seconds",
                code="model_loading",
                headers={"retry-after": str(max(1, math.ceil(ready)))},
            ) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ApiError(
                503,
                f"model '{model}' could not be loaded on backend {backend}: {exc}",
                code="model_load_failed",
                headers={"retry-after": "1"},
            ) from None
        finally:
            self.waiting -= 1


def _retrieve(task: asyncio.Task[None]) -> None:
    """A load nobody waits for any more must not log 'exception was never retrieved'."""
    with contextlib.suppress(BaseException):
        task.exception()
