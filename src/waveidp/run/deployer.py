"""`wave deploy` on the machine of `wave up`: an engine per deployment, started under the same
supervisor as `wave up`'s own (`Child`: health-checked, restarted after a crash, logs in
WAVE_HOME/logs), registered with the gateway of the same process, swapped without dropping a
request, loaded on demand and unloaded when idle. What is deployed is kept in
`WAVE_HOME/deployments.json` (`deploy.records`) and comes back when `wave up` starts again.

A swap (a deploy of a name already served, a rollback):

1. a new engine (its own process and port) starts with the new revision and passes its health
   check; if it cannot, nothing changes and the answer says why (its log);
2. its backend joins the gateway: new requests go to it (with load on demand it joins unloaded,
   and the first request loads it);
3. the old backend leaves the gateway's routing: no new request goes there, while the requests in
   flight there, streams included, go on;
4. once nothing has been in flight there for `DRAIN_SETTLE_S` (a request backing off between two
   attempts may still come back to it) its engine stops; past `drain_timeout_s` (the gateway's
   `total_timeout_s`: no request lives longer) it stops anyway, and the answer counts what was cut.

A name `wave up` serves with its own packaged engine (SmolLM2 without a fleet file) can be deployed
over: that engine is swapped out the same way, and stays out after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from waveidp.deploy import load_time
from waveidp.deploy.records import Deployment, Residence, Revision, load_deployments, save_deployments
from waveidp.engines import adapter
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import llama_tool
from waveidp.errors import ApiError, NotFoundError, WaveError
from waveidp.gateway.backends import BackendState
from waveidp.gateway.prediction import from_sizing
from waveidp.gateway.residency import Residency
from waveidp.gateway.state import Gateway
from waveidp.loopback import free_port
from waveidp.run.supervisor import Child

log = logging.getLogger("waveidp.run.deploy")
DRAIN_SETTLE_S = 1.0  # > the gateway's longest backoff between two attempts (0.5 s)
DRAIN_POLL_S = 0.05
IDLE_CHECK_S = 0.5
START_TIMEOUT_S = 120.0  # a large model on a slow disk; the health check ends it sooner


@dataclass(eq=False)
class Engine:
    """One engine of a deployment: its backend in the gateway and the process behind it."""

    deployment: str
    revision: Revision | None  # None: wave up's own packaged engine, adopted by a deployment
    backend: BackendState
    weights: Path | None
    child: Child | None = None
    predicted_load_s: float | None = None  # loaded on demand: from file size and disk read rate

    @property
    def busy(self) -> int:
        """Requests in flight on it, and those waiting for it to load."""
        r = self.backend.residency
        return self.backend.inflight + (r.waiting if r is not None else 0)

    def view(self, now: float) -> dict[str, Any]:
        r = self.backend.residency
        state = (
            r.describe(now)
            if r is not None and not r.loaded
            else ("loaded" if self.backend.probe_ok else f"down: {self.backend.down_reason}")
        )
        return {
            "backend": self.backend.name,
            "url": self.backend.root,
            "model": self.revision.model if self.revision else None,
            "state": state,
            "inflight": self.backend.inflight,
            "pid": self.child.proc.pid if self.child and self.child.proc else None,
        }


@dataclass
class Drain:
    """How an old engine's requests ended."""

    backend: str
    seconds: float = 0.0
    requests: int = 0  # in flight when it left the routing
    cut: int = 0  # still in flight when the drain timeout stopped it
    done: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "seconds": round(self.seconds, 3),
            "requests": self.requests,
            "cut": self.cut,
            "done": self.done,
        }


@dataclass
class Outcome:
    deployment: Deployment
    engine: Engine
    created: bool
    started_s: float | None  # the new engine's start to healthy (None: loads on demand)
    replaced: str | None = None  # the old backend's name
    drain: Drain | None = None


@dataclass
class Deployer:
    """The deployments of one `wave up` process (its event loop), and their engines."""

    logs: Path
    drain_timeout_s: float
    state_file: Path | None = None  # default: WAVE_HOME/deployments.json
    store_dir: Path | None = None  # default: WAVE_MODELS_DIR / WAVE_HOME/models
    # names `wave up` serves with its own engine, which a deployment may take over
    adoptable: dict[str, tuple[BackendState, Child]] = field(default_factory=dict)
    gw: Gateway | None = None
    deployments: dict[str, Deployment] = field(default_factory=dict)
    engines: dict[str, Engine] = field(default_factory=dict)  # the serving one, by deployment name
    draining: dict[str, tuple[Engine, asyncio.Task[Drain]]] = field(default_factory=dict)
    on_change: Callable[[], None] | None = None
    missing: dict[str, str] = field(default_factory=dict)  # recorded, but could not be restored: why
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _generation: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _idle: asyncio.Task[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def recorded(self) -> list[Deployment]:
        return load_deployments(self.state_file)

    async def restore(self, gw: Gateway) -> list[str]:
        """Bring back the recorded deployments into `gw`; the problems, one line each (a model gone
        from the store, an engine that does not start: it stays recorded, out of rotation)."""
        self.gw = gw
        problems = []
        for d in self.recorded():
            try:
                engine = await asyncio.to_thread(self._engine, d, d.revision)
            except ApiError as exc:  # kept recorded: a later deploy of the name replaces it
                problems.append(f"deployment {d.name}: {exc}")
                self.deployments[d.name] = d
                self.missing[d.name] = str(exc)
                continue
            try:
                if not d.residence.on_demand:
                    await self._start(engine)
            except WaveError as exc:
                problems.append(f"deployment {d.name}: {exc}")
                engine.backend.mark_down(str(exc))
            self._attach_residency(engine, d.residence, loaded=engine.child is not None)
            gw.add_backend(engine.backend)
            self.deployments[d.name] = d
            self.engines[d.name] = engine
        self._idle = asyncio.create_task(self._idle_loop())
        return problems

    async def close(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._idle
        for _, task in list(self.draining.values()):
            task.cancel()
        engines = [*self.engines.values(), *(e for e, _ in self.draining.values())]
        await asyncio.gather(*(self._stop(e) for e in engines), return_exceptions=True)

    # -- the admin API's actions -----------------------------------------------------------------

    async def deploy(self, name: str, revision: Revision, residence: Residence, *, wait: bool) -> Outcome:
        """Serve `name` with `revision`: a new deployment, or a swap of the one there."""
        async with self._lock(name):
            current = self.deployments.get(name)
            d = (
                current.swapped_to(revision, residence)
                if current
                else Deployment(name=name, revision=revision, residence=residence)
            )
            return await self._apply(d, wait=wait, created=current is None)

    async def rollback(self, name: str, *, wait: bool) -> Outcome:
        async with self._lock(name):
            d = self._get(name).rolled_back()
            return await self._apply(d, wait=wait, created=False)

    async def remove(self, name: str, *, wait: bool) -> Drain:
        async with self._lock(name):
            self._get(name)
            del self.deployments[name]
            self.missing.pop(name, None)
            engine = self.engines.pop(name, None)
            self._save()
            if engine is None:
                return Drain(name, done=True)
            assert self.gw is not None
            self.gw.remove_backend(engine.backend)
            task = self._drain(engine)
            return await task if wait else Drain(engine.backend.name, requests=engine.busy)

    def view(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        out = []
        for name, d in sorted(self.deployments.items()):
            row = d.model_dump(mode="json")
            engine = self.engines.get(name)
            row["engine"] = (
                engine.view(now)
                if engine
                else {
                    "backend": None,
                    "url": None,
                    "model": None,
                    "state": self.missing.get(name),
                    "inflight": 0,
                }
            )
            drain = self.draining.get(name)
            row["draining"] = drain[0].view(now) if drain else None
            out.append(row)
        return out

    # -- inside ----------------------------------------------------------------------------------

    def _get(self, name: str) -> Deployment:
        d = self.deployments.get(name)
        if d is None:
            raise NotFoundError("deployment", name, self.deployments, where="/admin/deployments")
        return d

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _save(self) -> None:
        save_deployments(self.deployments.values(), self.state_file)
        if self.on_change is not None:
            self.on_change()

    async def _apply(self, d: Deployment, *, wait: bool, created: bool) -> Outcome:
        gw = self.gw
        assert gw is not None
        old = self.engines.get(d.name) or self._adopt(d.name)
        self._refuse_foreign(d.name, old)
        new = await asyncio.to_thread(self._engine, d, d.revision)  # file reads, sizing: off the loop
        started_s = None
        if not d.residence.on_demand:
            t0 = time.monotonic()
            await self._start(new)  # raises: nothing changed, the old engine keeps serving
            started_s = time.monotonic() - t0
        self._attach_residency(new, d.residence, loaded=new.child is not None)
        gw.add_backend(new.backend)  # from here, new requests may go to it
        self.engines[d.name] = new
        self.deployments[d.name] = d
        self.missing.pop(d.name, None)
        self._save()
        outcome = Outcome(d, new, created, started_s)
        if old is not None:
            gw.remove_backend(old.backend)  # no new request goes to the old one
            outcome.replaced = old.backend.name
            previous = self.draining.get(d.name)
            if previous is not None:  # a swap during a swap: the older drain goes on by itself
                self.draining[f"{d.name}~{previous[0].backend.name}"] = previous
            task = self._drain(old)
            outcome.drain = await task if wait else Drain(old.backend.name, requests=old.busy)
        log.info("deployment %s now %s (%s)", d.name, d.revision.summary(), new.backend.name)
        return outcome

    def _adopt(self, name: str) -> Engine | None:
        found = self.adoptable.pop(name, None)
        if found is None:
            return None
        backend, child = found
        return Engine(name, None, backend, None, child)

    def _refuse_foreign(self, name: str, old: Engine | None) -> None:
        assert self.gw is not None
        others = [b.name for b in self.gw.serving(name) if old is None or b is not old.backend]
        if others:
            raise ApiError(
                409,
                f"model name '{name}' is served by backend(s) {', '.join(others)} of the fleet file, "
                "not by a deployment",
                code="name_taken",
                param="name",
            )

    def _engine(self, d: Deployment, rev: Revision) -> Engine:
        from waveidp.models import ModelStore

        store = ModelStore(self.store_dir, create=False)
        try:
            weights = store.get(rev.model).weights_path
        except NotFoundError as exc:
            raise ApiError(
                404,
                f"model '{rev.model}' is not in the model store of this machine ({store.root}): {exc.fix}",
                code="model_not_in_store",
                param="model",
            ) from None
        slots = rev.flags.get("-np")
        devices = rev.device.split("+") if rev.device else []
        prediction = from_sizing(
            rev.model, None, devices, "llamacpp", slots if isinstance(slots, int) else None
        )
        backend = BackendState(
            name=f"{d.name}@{next(self._generation)}",
            root="http://127.0.0.1:0",  # the engine's port is chosen as it starts
            adapter=adapter("llamacpp"),
            models={d.name},
            max_concurrency=slots if isinstance(slots, int) else None,
            predictions={d.name: prediction} if prediction else {},
        )
        engine = Engine(d.name, rev, backend, weights)
        if d.residence.managed:
            engine.predicted_load_s = load_time.predicted_load_s(rev.model, weights)
        return engine

    def _attach_residency(self, e: Engine, residence: Residence, *, loaded: bool) -> None:
        if not residence.managed or e.predicted_load_s is None:
            return

        async def load() -> None:
            await self._start(e)

        async def unload() -> None:
            await self._stop(e)

        e.backend.residency = Residency(
            load=load,
            unload=unload,
            predicted_load_s=e.predicted_load_s,
            load_timeout_s=residence.load_timeout_s,
            idle_unload_s=residence.idle_unload_s,
            state="loaded" if loaded else "unloaded",
        )

    async def _start(self, e: Engine) -> None:
        assert e.revision is not None and e.weights is not None
        spec = server_spec(e.deployment, e.revision, e.weights, free_port())
        child = Child(
            name=e.backend.name,
            command=spec.command(),
            health_url=spec.url + "/health",
            log_path=self.logs / f"{e.backend.name}.log",
            start_timeout_s=START_TIMEOUT_S,
        )
        child.on_down = e.backend.mark_down
        child.on_up = e.backend.mark_up
        e.backend.root = spec.url
        e.child = child  # from here a stop (a drain, wave up stopping) ends it, even while it loads
        t0 = time.monotonic()
        try:
            await child.start()
        except BaseException as exc:
            await child.stop()
            if e.child is child:
                e.child = None
            if isinstance(exc, WaveError):
                raise ApiError(
                    502,
                    f"the engine of {e.deployment} ({e.revision.model}) did not start: {exc}",
                    code="engine_failed",
                ) from None
            raise
        load_time.record_load(e.revision.model, time.monotonic() - t0)
        e.backend.mark_up()

    async def _stop(self, e: Engine) -> None:
        child, e.child = e.child, None
        if child is not None:
            await child.stop()

    def _drain(self, e: Engine) -> asyncio.Task[Drain]:
        task = asyncio.create_task(self._drained(e))
        self.draining[e.deployment] = (e, task)

        def forget(t: asyncio.Task[Drain]) -> None:
            for key, (engine, _) in list(self.draining.items()):
                if engine is e:
                    del self.draining[key]

        task.add_done_callback(forget)
        return task

    async def _drained(self, e: Engine) -> Drain:
        result = Drain(e.backend.name, requests=e.busy)
        started = time.monotonic()
        quiet_since: float | None = None
        try:
            while True:
                now = time.monotonic()
                if e.busy:
                    quiet_since = None
                elif quiet_since is None:
                    quiet_since = now
                elif now - quiet_since >= DRAIN_SETTLE_S:
                    break
                if now - started > self.drain_timeout_s:
                    result.cut = e.busy
                    log.warning("%s: drain timeout, %d request(s) cut", e.backend.name, result.cut)
                    break
                await asyncio.sleep(DRAIN_POLL_S)
        finally:
            await self._stop(e)
        result.seconds = time.monotonic() - started
        result.done = True
        log.info("%s drained in %.2fs and stopped", e.backend.name, result.seconds)
        return result

    async def _idle_loop(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_S)
            now = time.monotonic()
            for e in list(self.engines.values()):
                r = e.backend.residency
                if r is None or r.idle_unload_s is None or not r.loaded:
                    continue
                if e.busy:
                    r.last_used = now  # a long request is use until it ends
                elif r.idle_for(now) >= r.idle_unload_s:
                    log.info("%s idle for %.0fs: unloading", e.backend.name, r.idle_for(now))
                    try:
                        await r.sleep()
                    except Exception:  # one engine's stop must not end idle checking
                        log.exception("unloading %s failed", e.backend.name)


def server_spec(name: str, rev: Revision, weights: Path, port: int) -> LlamaServerSpec:
    """The llama-server of a revision: its sizing flags mapped onto the launch command."""
    flags = dict(rev.flags)

    def number(flag: str) -> int | None:
        v = flags.pop(flag, None)
        return v if isinstance(v, int) else None

    threads, slots, context, layers = number("-t"), number("-np"), number("-c"), number("-ngl")
    extra = tuple(x for flag, value in flags.items() for x in (flag, str(value)))
    return LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=weights,
        port=port,
        alias=name,
        threads=threads,
        parallel=slots or 4,
        context=context or 4096 * (slots or 4),
        gpu_layers=layers,
        extra=extra,
    )
