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
from gateway_support import API_KEY, FixedPrediction

from waveidp.engines import adapter
from waveidp.fleet.models import GatewayConfig, ModelRouting, RoutingConfig
from waveidp.gateway import backends_from_urls
from waveidp.gateway.backends import BackendState
from waveidp.gateway.compose import GatewaySetup, compose
from waveidp.gateway.exchange import route
from waveidp.gateway.health import probe_all
from waveidp.gateway.recent import RecentRequests
from waveidp.gateway.request_info import parse_request
from waveidp.gateway.state import Gateway
from waveidp.gateway.telemetry import NodeTelemetry
from waveidp.security.gateway_security import SecurityOptions
from waveidp.security.guard import Authenticator, Guard
from waveidp.security.secrets import Secret

HEADERS = [(b"host", b"gw"), (b"authorization", f"Bearer {API_KEY}".encode())]
CHAT = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64})


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


def loaded(name: str, n: int) -> BackendState:
    """A 2-slot backend (0.1 s to a first token, 50 ms a token) with `n` 64-token requests ahead."""
    b = BackendState(
        name=name,
        root="http://127.0.0.1:9",  # never called: every request here is decided before sending
        adapter=adapter("vllm"),
        models={"m"},
        max_concurrency=2,
        predictions={"m": FixedPrediction(0.1, 0.05, 2)},
    )
    info = parse_request("chat", CHAT)
    for _ in range(n):
        b.begin(info)
    return b


def test_a_request_no_backend_would_start_in_time_is_answered_503_overloaded_with_retry_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAVE_HOME", str(tmp_path))
    # 10 and 16 requests ahead of 2 slots: ~16 s and ~26 s before a first token, past the bound
    setup = GatewaySetup(
        [loaded("a", 10), loaded("b", 16)],
        GatewayConfig(),
        RoutingConfig(models={"m": ModelRouting(shed_after_s=10.0)}),
        SecurityOptions(bootstrap_key=Secret(API_KEY, name="WAVE_API_KEY"), audit=False),
    )
    body = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    records = RecentRequests()

    async def run() -> list[dict[str, object]]:
        with compose(setup) as app:
            app.gateway.recent = records
            pending = [{"type": "http.request", "body": body, "more_body": False}]
            sent: list[dict[str, object]] = []

            async def receive() -> dict[str, object]:
                return pending.pop() if pending else {"type": "http.disconnect"}

            async def send(message: dict[str, object]) -> None:
                sent.append(message)

            scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": HEADERS}
            await app.hot["/v1/chat/completions"](scope, receive, send)  # type: ignore[attr-defined]
            return sent

    sent = asyncio.run(run())
    headers = dict(sent[0]["headers"])  # type: ignore[call-overload]
    error = orjson.loads(b"".join(m.get("body", b"") for m in sent[1:]))["error"]  # type: ignore[misc]
    assert sent[0]["status"] == 503 and error["code"] == "overloaded", error
    assert "past 10s (soonest 16" in error["message"]
    # until a's queue is back within the bound: ~6 s
    assert 5 <= int(headers[b"retry-after"]) <= 8  # type: ignore[call-overload]
    (recent,) = records.newest_first()  # the console shows why it was refused
    trace = recent.record.decision.trace()  # type: ignore[union-attr]
    assert trace is not None and trace.reason == "shed" and trace.winner == "a"


def test_when_gpu_headroom_moves_the_policys_pick_the_trace_says_so_and_what_it_costs() -> None:
    hot, cool = loaded("hot", 0), loaded("cool", 1)  # hot idle: the policy's pick
    gw = Gateway([hot, cool], Guard(Authenticator()), telemetry=[NodeTelemetry("box", ("http://x",))])
    info = parse_request("chat", CHAT)
    calm = route(gw, info)[0].trace()
    assert calm is not None and calm.winner == "hot" and calm.headroom is None
    hot.gpu_pressure = "GPU 0 clocks slowed (hw_thermal_slowdown)"
    trace = route(gw, info)[0].trace()
    assert trace is not None and trace.winner == "cool" and trace.reason == "gpu-headroom"
    shown = trace.to_dict()["headroom"]
    assert shown["moved"] == "hot" and shown["pressure"] == hot.gpu_pressure
    assert shown["policy_reason"] == calm.reason and shown["policy_detail"] == calm.detail
    assert shown["cost_s"] > 0 and [c.backend for c in trace.candidates] == ["cool", "hot"]
    assert f"forecast {trace.candidates[0].total_s:.3f}s vs" in trace.detail
    assert trace.detail.startswith("GPU headroom moved hot (")
