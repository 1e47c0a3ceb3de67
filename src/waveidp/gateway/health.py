"""The background loop that keeps each backend's health and load fresh (never on a request's path).

Every `probe_interval_s`: GET the engine's health URL and its `/metrics`, each with a short
timeout. A failed probe takes the backend out of rotation with the reason; a good probe brings it
back (a half-open breaker still has to pass one real request). Backends given as bare URLs have
their model list refreshed from `/v1/models` when they are up; for the others `/v1/models` is
read once (the engine's own fields of each model, which `GET /v1/models` passes on).
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import orjson

from waveidp.gateway.backends import BackendState
from waveidp.gateway.state import Gateway

log = logging.getLogger("waveidp.gateway.health")
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.0, sock_connect=1.0)


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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect ({exc.os_error.strerror or exc.os_error})"
    return f"{type(exc).__name__}: {exc}"
