"""What the Fleet page shows, built from the gateway's live state (no IO: the health loop and the
telemetry scrape fill what this reads).

Per backend: health and why, engine, models, slots, in flight (the gateway's) and the engine's
own running/waiting counts, KV-cache use where the engine reports it, the observed TTFT/ITL
(exponentially weighted, recent requests) beside sizing's prediction, its share of the routing
decisions over the last minutes, and its circuit breaker. Per node and device: the fleet file's
hardware, with the node exporter's GPU memory, utilisation, power and temperature where present.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from waveidp.fleet.models import Fleet
from waveidp.gateway.backends import BackendState
from waveidp.gateway.metrics import GatewayMetrics
from waveidp.observe.samples import GpuSample, NodeSample

State = Literal["up", "down", "open", "half-open"]
REFERENCE_PROMPT = 512  # tokens: the prompt the predicted TTFT is quoted for
REFERENCE_CONTEXT = 1024  # tokens: the context the predicted ITL is quoted for


@dataclass(frozen=True)
class BackendRow:
    name: str
    url: str
    engine: str
    node: str | None
    models: tuple[str, ...]
    state: State
    reason: str | None
    down_since: float | None
    slots: int | None
    inflight: int
    engine_running: float | None
    engine_waiting: float | None
    kv_usage: float | None
    ttft_observed_s: float | None
    itl_observed_s: float | None
    observations: int
    ttft_predicted_s: float | None
    itl_predicted_s: float | None
    share: float | None  # of the routing decisions in the window, 0..1
    breaker_failures: int

    @property
    def healthy(self) -> bool:
        return self.state == "up"


@dataclass(frozen=True)
class DeviceRow:
    node: str
    device: str
    hardware: str
    count: int
    memory_used_bytes: float | None = None
    memory_total_bytes: float | None = None
    util_percent: float | None = None
    power_w: float | None = None
    temperature_c: float | None = None
    telemetry_at: float | None = None

    @property
    def memory_fraction(self) -> float | None:
        if self.memory_used_bytes is None or not self.memory_total_bytes:
            return None
        return self.memory_used_bytes / self.memory_total_bytes


@dataclass(frozen=True)
class ModelRow:
    name: str
    backends: tuple[str, ...]
    routable: int
    policy: str
    slo: str | None


@dataclass(frozen=True)
class FleetView:
    backends: tuple[BackendRow, ...]
    devices: tuple[DeviceRow, ...]
    models: tuple[ModelRow, ...]
    share_window_s: float
    taken_at: float

    @property
    def up(self) -> int:
        return sum(1 for b in self.backends if b.healthy)

    @property
    def inflight(self) -> int:
        return sum(b.inflight for b in self.backends)


def _state(b: BackendState, now: float) -> tuple[State, str | None]:
    if not b.probe_ok:
        return "down", b.down_reason
    if b.breaker.state == "open" and not b.breaker.allows(now):
        return "open", f"circuit open after {b.breaker.failures} failures"
    if b.breaker.state == "half-open":
        return "half-open", "circuit half-open: one trial request decides"
    return "up", None


def _predicted(b: BackendState) -> tuple[float | None, float | None]:
    for p in b.predictions.values():
        try:
            return p.ttft_s(REFERENCE_PROMPT), p.itl_s(1, REFERENCE_CONTEXT)
        except Exception:  # sizing is advisory: a gap shows as a dash
            return None, None
    return None, None


def backend_row(b: BackendState, node: str | None, share: float | None, now: float) -> BackendRow:
    state, reason = _state(b, now)
    ttft_p, itl_p = _predicted(b)
    load = b.load
    return BackendRow(
        name=b.name,
        url=b.root,
        engine=b.engine,
        node=node,
        models=tuple(sorted(b.models)),
        state=state,
        reason=reason,
        down_since=b.down_since,
        slots=b.slots,
        inflight=b.inflight,
        engine_running=load.running,
        engine_waiting=load.waiting,
        kv_usage=load.kv_usage,
        ttft_observed_s=b.ttft.value,
        itl_observed_s=b.itl.value,
        observations=b.ttft.count,
        ttft_predicted_s=ttft_p,
        itl_predicted_s=itl_p,
        share=share,
        breaker_failures=b.breaker.failures,
    )


def _is_gpu(hardware_id: str) -> bool:
    from waveidp import catalog
    from waveidp.errors import WaveError

    try:
        return catalog.hardware(hardware_id).kind in ("gpu", "soc")
    except WaveError:
        return False


def _device(
    node: str, device: str, hardware: str, count: int, g: GpuSample | None, at: float | None
) -> DeviceRow:
    if g is None:
        return DeviceRow(node=node, device=device, hardware=hardware, count=count)
    return DeviceRow(
        node=node,
        device=device,
        hardware=hardware,
        count=count,
        memory_used_bytes=g.memory_used_bytes,
        memory_total_bytes=g.memory_total_bytes,
        util_percent=g.util_percent,
        power_w=g.power_w,
        temperature_c=g.temp_c,
        telemetry_at=at,
    )


def device_rows(fleet: Fleet | None, telemetry: Mapping[str, NodeSample | None]) -> list[DeviceRow]:
    """The fleet file's devices, each GPU with its node's latest sample where one is present (the
    n-th GPU device of a node takes the n-th GPU of its sample), then the GPUs of nodes the
    gateway has telemetry for but the fleet file does not list."""
    rows: list[DeviceRow] = []
    listed = set()
    for node in fleet.nodes if fleet else []:
        listed.add(node.name)
        sample = telemetry.get(node.name)
        gpus = list(sample.gpus) if sample is not None else []
        at = sample.taken_at if sample is not None else None
        for d in node.devices:
            g = gpus.pop(0) if gpus and _is_gpu(d.hardware) else None
            rows.append(_device(node.name, d.id, d.hardware, d.count, g, at))
    for name, sample in telemetry.items():
        if name not in listed and sample is not None:
            for g in sample.gpus:
                rows.append(_device(name, g.device or f"gpu{g.index}", g.name, 1, g, sample.taken_at))
    return rows


def model_rows(backends: Sequence[BackendState], routing: Any, now: float) -> list[ModelRow]:
    by_model: dict[str, list[BackendState]] = {}
    for b in backends:
        for m in b.models:
            by_model.setdefault(m, []).append(b)
    rows = []
    for name in sorted(by_model):
        spec = routing.models.get(name)
        slo = None
        if spec is not None and spec.slo is not None:
            parts = []
            if spec.slo.ttft_s is not None:
                parts.append(f"TTFT ≤ {spec.slo.ttft_s * 1000:g} ms")
            if spec.slo.itl_s is not None:
                parts.append(f"ITL ≤ {spec.slo.itl_s * 1000:g} ms")
            slo = ", ".join(parts)
        rows.append(
            ModelRow(
                name=name,
                backends=tuple(b.name for b in by_model[name]),
                routable=sum(1 for b in by_model[name] if b.routable(now)),
                policy=spec.policy if spec is not None else routing.default_policy,
                slo=slo,
            )
        )
    return rows


class RoutingShare:
    """Each backend's share of the routing decisions over the last `window_s`, from the gateway's
    own `wave_routing_decisions_total` counters (this process's), sampled every `every_s`."""

    def __init__(self, metrics: GatewayMetrics, window_s: float = 300.0, every_s: float = 5.0) -> None:
        self.metrics = metrics
        self.window_s = window_s
        self.every_s = every_s
        # the counters start at zero with the gateway: the first baseline, so traffic before the
        # first look at the page still counts
        self._samples: deque[tuple[float, dict[str, float]]] = deque([(time.monotonic(), {})])

    def _counts(self) -> dict[str, float]:
        counts: dict[str, float] = {}
        for family in self.metrics.decisions.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    backend = s.labels.get("backend", "")
                    counts[backend] = counts.get(backend, 0.0) + s.value
        return counts

    def sample(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self._samples and now - self._samples[-1][0] < self.every_s:
            return
        self._samples.append((now, self._counts()))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window_s:
            self._samples.popleft()

    def shares(self) -> dict[str, float]:
        """backend -> share of the decisions between the oldest kept sample and now."""
        if not self._samples:
            return {}
        base = self._samples[0][1]
        current = self._counts()
        delta = {b: v - base.get(b, 0.0) for b, v in current.items()}
        total = sum(delta.values())
        return {b: d / total for b, d in delta.items()} if total > 0 else {}

    def span_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return now - self._samples[0][0] if self._samples else 0.0


def build(
    backends: Sequence[BackendState],
    routing: Any,
    fleet: Fleet | None,
    share: RoutingShare,
    telemetry: Mapping[str, NodeSample | None],
) -> FleetView:
    now = time.monotonic()
    share.sample(now)
    shares = share.shares()
    node_of = {b.name: n.name for n, b in fleet.backends()} if fleet else {}
    rows = tuple(backend_row(b, node_of.get(b.name), shares.get(b.name), now) for b in backends)
    return FleetView(
        backends=rows,
        devices=tuple(device_rows(fleet, telemetry)),
        models=tuple(model_rows(backends, routing, now)),
        share_window_s=share.span_s(now),
        taken_at=time.time(),
    )
