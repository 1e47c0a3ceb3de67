"""A request leaves nothing for the garbage collector: all it made is freed by reference counting
the moment it ends. A reference cycle per request is garbage the collector must find, and under
load it costs CPU on every request (a cycle per stream once cost the gateway ~18 % more CPU per
streamed request under wrk); the gateway also collects rarely (`server.GC_THRESHOLDS`), so such
garbage piles up between collections."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from gateway_support import API_KEY

from waveidp.fleet.models import GatewayConfig, RoutingConfig
from waveidp.gateway import backends_from_urls
from waveidp.gateway.compose import GatewaySetup, compose
from waveidp.gateway.exchange import WATCH_AFTER_S
from waveidp.gateway.health import probe_all
from waveidp.security.gateway_security import SecurityOptions
from waveidp.security.secrets import Secret

HEADERS = [(b"host", b"gw"), (b"authorization", f"Bearer {API_KEY}".encode())]


async def post(app: object, body: dict[str, object]) -> int:
    """One POST to /v1/chat/completions as uvicorn makes it: the body, then nothing until the
    client hangs up (this one never does); returns the answer's status."""
    raw = orjson.dumps(body)
    pending = [{"type": "http.request", "body": raw, "more_body": False}]
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def receive() -> dict[str, object]:
        if pending:
            return pending.pop()
        await never
        raise AssertionError("unreachable")

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": HEADERS}
    await app.hot["/v1/chat/completions"](scope, receive, send)  # type: ignore[attr-defined]
    return int(sent[0]["status"])  # type: ignore[call-overload]


def test_requests_leave_no_cyclic_garbage(
    fake_upstream: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVE_HOME", str(tmp_path))
    fast = fake_upstream("fast", model=["fast"])
    slow = fake_upstream("slow", model=["slow"], ttft=WATCH_AFTER_S * 2)  # plain ones start the watcher
    chat = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    requests = [
        ({**chat, "model": "fast"}, 200),
        ({**chat, "model": "fast", "stream": True}, 200),
        ({**chat, "model": "slow"}, 200),
        ({**chat, "model": "slow", "stream": True}, 200),
        ({**chat, "model": "nope"}, 404),
        ({"model": "fast"}, 400),
    ]
    setup = GatewaySetup(
        backends_from_urls([fast.url, slow.url], "openai"),
        GatewayConfig(),
        RoutingConfig(),
        SecurityOptions(bootstrap_key=Secret(API_KEY, name="WAVE_API_KEY"), audit=False),
    )

    async def run() -> int:
        with compose(setup) as app:
            gw = app.gateway
            await gw.start()
            try:
                await probe_all(gw)
                for body, status in requests:  # warm: pooled connections, caches, metric children
                    assert await post(app, body) == status
                gc.collect()
                gc.disable()
                try:
                    for _ in range(3):
                        for body, status in requests:
                            assert await post(app, body) == status
                    await asyncio.sleep(WATCH_AFTER_S)  # cancelled watchers run to their end
                    return gc.collect()
                finally:
                    gc.enable()
            finally:
                await gw.close()

    assert asyncio.run(run()) == 0
