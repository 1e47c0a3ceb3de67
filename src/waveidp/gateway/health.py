"""The background loops that keep each backend's health and load, and each node's telemetry,
fresh (never on a request's path).

Every `probe_interval_s`: GET the engine's health URL and its `/metrics`, each with a short
timeout. A failed probe takes the backend out of rotation with the reason; a good probe brings it
back (a half-open breaker still has to pass one real request). Backends given as bare URLs have
their model list refreshed from `/v1/models` when they are up; for the others `/v1/models` is
read once (the engine's own fields of each model, which `GET /v1/models` passes on).

Every `gateway.telemetry_interval_s`: GET each node's exporters (`gateway/telemetry.py`), with the
same short timeouts, and keep the node's last sample. An exporter that does not answer is logged
once when it stops and once when it is back, never on every round.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aiohttp
import orjson

from waveidp.gateway.backends import BackendState
from waveidp.gateway.routing.headroom import pressure
from waveidp.gateway.state import Gateway
from waveidp.gateway.telemetry import NodeTelemetry, backend_gpus, metrics_url, shown_url, wall_clock
from waveidp.observe import NodeCollector
from waveidp.observe.exporter import stale_after
from waveidp.observe.samples import NodeSample
from waveidp.observe.scrape import has_figures, merge, parse_exposition

log = logging.getLogger("waveidp.gateway.health")
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0, sock_connect=1.0)
# A full node_exporter page of a large host is a few MB; more is not an exporter.
MAX_EXPOSITION_BYTES = 16 * 2**20


async def probe(gw: Gateway, b: BackendState) -> None:
    if b.residency is not None and not b.residency.loaded:
        return  # nothing to probe until it is loaded; its loader waited for health itself
    headers = {"authorization": f"Bearer {b.api_key}"} if b.api_key else {}
    try:
        health = b.adapter.health_url(b.root)
        async with await gw.send(b, "GET", health, headers=headers, timeout=PROBE_TIMEOUT) as r:
            await r.read()
            if r.status != 200:
                b.mark_down(f"health check {b.adapter.health_path} answered HTTP {r.status}")
                return
    except (aiohttp.ClientError, TimeoutError) as exc:
        b.mark_down(f"health check failed: {_describe(exc)}")
        return
    if not b.probe_ok:
        log.warning("backend %s is back up", b.name)
    b.mark_up()
    url = b.adapter.metrics_url(b.root)
    if url:
        try:
            async with await gw.send(b, "GET", url, headers=headers, timeout=PROBE_TIMEOUT) as r:
                if r.status == 200:
                    b.load = b.adapter.parse_metrics(await r.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("metrics of %s unreadable: %s", b.name, exc)
    if b.discover_models or not b.model_entries:
        await discover_models(gw, b)


async def discover_models(gw: Gateway, b: BackendState) -> None:
    """Read the backend's `/v1/models`: its entries (kept as the engine wrote them), and for a
    backend given as a bare URL its model list."""
    headers = {"authorization": f"Bearer {b.api_key}"} if b.api_key else {}
    try:
        async with await gw.send(
            b, "GET", b.root + "/v1/models", headers=headers, timeout=PROBE_TIMEOUT
        ) as r:
            if r.status != 200:
                return
            data = orjson.loads(await r.read())
    except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
        return
    listed = data.get("data") if isinstance(data, dict) else None
    entries = {m["id"]: m for m in listed or [] if isinstance(m, dict) and isinstance(m.get("id"), str)}
    b.model_entries = entries
    if not b.discover_models:
        return
    b.discovered = True
    found = set(entries)
    if found != b.models:
        b.models = found
        gw.reindex()


async def probe_all(gw: Gateway) -> None:
    await asyncio.gather(*(probe(gw, b) for b in gw.backends))
    for b in gw.backends:
        gw.metrics.healthy.labels(b.name).set(1.0 if b.probe_ok else 0.0)
        gw.metrics.inflight.labels(b.name).set(b.inflight)
        gw.metrics.engine_queue.labels(b.name).set(b.load.queued)


async def health_loop(gw: Gateway) -> None:
    while True:
        try:
            await probe_all(gw)
            if gw.guard.audit is not None:
                gw.metrics.audit_spooled.set(gw.guard.audit.spooled)
        except Exception:  # a bug in one round must not end health checking
            log.exception("health round failed")
        await asyncio.sleep(gw.probe_interval_s)


async def read_node(gw: Gateway, t: NodeTelemetry) -> None:
    """One read of a node's telemetry: its own collector's last sample, or a scrape of each of its
    exporters (in turn: they are on one host), parsed in a thread (`observe.scrape`); then the
    GPU pressure of the node's backends, which routing reads (`routing/headroom.py`)."""
    try:
        sample = _local_sample(t) if t.local else await _scrape(gw, t)
    except TelemetryUnavailable as exc:
        if t.fail(str(exc)):
            log.warning("telemetry of node %s: %s", t.node, t.status_line())
    else:
        if t.record(sample):
            log.warning("telemetry of node %s is back", t.node)
    current = t.current()
    for b in gw.on_node(t.node):
        was = b.gpu_pressure
        kv = b.load.kv_usage is not None
        b.gpu_pressure = pressure(backend_gpus(current, b.gpus), kv) if current is not None else None
        if b.gpu_pressure != was and b.gpu_pressure is not None:
            log.warning("backend %s goes behind the others: %s", b.name, b.gpu_pressure)


class TelemetryUnavailable(Exception):
    """Why a node's telemetry read gave nothing (shown as "no telemetry since ...: <this>")."""


def _local_sample(t: NodeTelemetry) -> NodeSample:
    c = t.collector
    sample = c.latest() if c is not None else None
    if c is None or sample is None:
        raise TelemetryUnavailable("the node collector has no sample yet")
    if time.time() - sample.taken_at > stale_after(c.interval_s):
        when = wall_clock(sample.taken_at)
        raise TelemetryUnavailable(f"the collector's last sample is from {when}: a device stopped answering")
    return sample


async def _scrape(gw: Gateway, t: NodeTelemetry) -> NodeSample:
    assert gw.session is not None
    samples = []
    for url in t.exporters:
        where = shown_url(url)
        try:
            async with gw.session.get(metrics_url(url), timeout=PROBE_TIMEOUT) as r:
                if r.status != 200:
                    raise TelemetryUnavailable(f"{where} answered HTTP {r.status}")
                body = bytearray()
                async for chunk in r.content.iter_chunked(1 << 16):
                    body += chunk
                    if len(body) > MAX_EXPOSITION_BYTES:
                        raise TelemetryUnavailable(
                            f"{where} answered more than {MAX_EXPOSITION_BYTES >> 20} MiB"
                        )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TelemetryUnavailable(f"{where}: {_describe(exc)}") from None
        try:
            sample = await asyncio.to_thread(
                parse_exposition, body.decode("utf-8", "replace"), previous=t.sample, received_at=time.time()
            )
        except ValueError as exc:
            raise TelemetryUnavailable(f"{where} is not a Prometheus exposition ({exc})") from None
        if not has_figures(sample):
            raise TelemetryUnavailable(f"{where} serves no device or host figures (its sample is stale)")
        samples.append(sample)
    return merge(samples)


async def telemetry_loop(gw: Gateway) -> None:
    """Read each node's telemetry every `gateway.telemetry_interval_s`, each node in a loop of its
    own (an exporter that hangs until PROBE_TIMEOUT delays its node only); the local node's
    collector runs in this process meanwhile."""
    nodes = list(gw.telemetry.values())
    local = [t for t in nodes if t.local]
    try:
        for t in local:
            t.collector = NodeCollector(gw.config.telemetry_interval_s)
            await asyncio.to_thread(t.collector.start)  # opening NVML can take a second
        await asyncio.gather(*(_node_loop(gw, t) for t in nodes))
    finally:
        for t in local:
            if t.collector is not None:
                t.collector.close()


async def _node_loop(gw: Gateway, t: NodeTelemetry) -> None:
    while True:
        try:
            await read_node(gw, t)
        except Exception:  # a bug in one read must not end the node's reads
            log.exception("reading the telemetry of node %s failed", t.node)
        await asyncio.sleep(gw.config.telemetry_interval_s)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return f"{type(exc).__name__}: {exc}"
