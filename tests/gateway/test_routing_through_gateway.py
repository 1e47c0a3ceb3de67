"""The router inside the gateway: each request's decision can explain itself (the debug log line,
the record the console reads), and what the requests see teaches the router the backends' speed.
In process, against two fake engines (tests/gateway/fake_upstream.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from gateway_support import API_KEY

from waveidp.fleet.models import GatewayConfig, RoutingConfig
from waveidp.gateway import backends_from_urls
from waveidp.gateway.compose import GatewaySetup, compose
from waveidp.gateway.health import probe_all
from waveidp.gateway.recent import RecentRequests
from waveidp.security.gateway_security import SecurityOptions
from waveidp.security.secrets import Secret

HEADERS = [(b"host", b"gw"), (b"authorization", f"Bearer {API_KEY}".encode())]


async def post(app: object, body: dict[str, object]) -> tuple[int, str]:
    """One POST to /v1/chat/completions, read to its end: (status, the backend that answered)."""
    pending = [{"type": "http.request", "body": orjson.dumps(body), "more_body": False}]
    done = asyncio.Event()

    async def receive() -> dict[str, object]:
        if pending:
            return pending.pop()
        await done.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": HEADERS}
    await app.hot["/v1/chat/completions"](scope, receive, send)  # type: ignore[attr-defined]
    done.set()
    headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
    return int(sent[0]["status"]), headers[b"x-wave-backend"].decode()  # type: ignore[call-overload]


def test_each_decision_is_on_its_record_and_in_the_log_and_the_answers_teach_the_router(
    fake_upstream: Callable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("WAVE_HOME", str(tmp_path))
    a = fake_upstream("a", model=["m"], ttft=0.01, itl=0.005)
    b = fake_upstream("b", model=["m"], ttft=0.01, itl=0.005)
    setup = GatewaySetup(
        backends_from_urls([a.url, b.url], "vllm"),
        GatewayConfig(),
        RoutingConfig(),
        SecurityOptions(bootstrap_key=Secret(API_KEY, name="WAVE_API_KEY"), audit=False),
    )
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 24}

    records = RecentRequests()  # the ring the console's Requests page reads

    async def run() -> list[tuple[int, str]]:
        with compose(setup) as app:
            gw = app.gateway
            gw.recent = records
            await gw.start()
            try:
                await probe_all(gw)
                answers = []
                for i in range(6):
                    answers.append(await post(app, {**chat, "stream": i % 2 == 0, "user": f"u{i}"}))
                for backend in gw.backends:
                    if any(name == backend.name for _, name in answers):
                        curve = backend.learning.curves["m"]
                        assert curve.observations > 0, backend.name  # streams and plain answers teach it
                        assert not backend.active and backend.inflight == 0  # every attempt ended
                return answers
            finally:
                await gw.close()

    with caplog.at_level(logging.DEBUG, logger="waveidp.gateway.routing"):
        answers = asyncio.run(run())
    assert all(status == 200 for status, _ in answers)
    # what the console shows: the record's decision, as plain JSON, names the backend that answered
    for (_, backend), recent in zip(answers, reversed(list(records.newest_first())), strict=True):
        assert recent.record.backend == backend and recent.record.decision is not None
        trace = recent.record.decision.trace()
        assert trace is not None
        shown = orjson.loads(orjson.dumps(trace.to_dict()))
        assert shown["winner"] == backend and shown["policy"] == "predicted-latency"
        assert shown["reason"] in ("exploration", "best-forecast", "uncertain-tie", "affinity")
        assert {c["backend"] for c in shown["candidates"]} == {"upstream0", "upstream1"}
        assert all({"total_s", "uncertainty", "ttft_s", "itl_s"} <= c.keys() for c in shown["candidates"])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("route m -> ")]
    assert len(lines) == len(answers)
    # neither has a prior: the first request goes to one of them as its first, and says so
    assert "(exploration: no prior and nothing observed yet: its first request)" in lines[0]
    for line, (_, backend) in zip(lines, answers, strict=True):
        assert line.startswith(f"route m -> {backend} (")
        assert "upstream0=ttft" in line and "upstream1=ttft" in line  # every candidate's forecast
