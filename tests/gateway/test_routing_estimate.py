"""The predicted-latency queue estimate from the work really outstanding on a backend: pure, no sockets.

The backend is shaped like the benchmark's GPU (vLLM, 16 slots, ~30 ms to the first token, ~11 ms
per token); requests go through the same begin/first_token/end calls the gateway makes.
"""

from __future__ import annotations

import orjson
import pytest
from gateway_support import FixedPrediction, teach

from waveidp.engines import EngineLoad, adapter
from waveidp.gateway.backends import DEFAULT_OUTPUT_TOKENS, BackendState, Work
from waveidp.gateway.request_info import RequestInfo, parse_request
from waveidp.gateway.routing.forecast import forecast

PREFILL, ITL, SLOTS = 0.03, 0.011, 16


def gpu(**kw: object) -> BackendState:
    return BackendState(
        name="gpu",
        root="http://gpu",
        adapter=adapter("vllm"),
        models={"m"},
        max_concurrency=SLOTS,
        predictions={"m": FixedPrediction(ttft=PREFILL, itl=ITL, slots=SLOTS)},
        **kw,  # type: ignore[arg-type]
    )


def req(max_tokens: int | None = 64) -> RequestInfo:
    body: dict[str, object] = {"model": "m", "messages": [{"role": "user", "content": "hello " * 20}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return parse_request("chat", orjson.dumps(body))


def send(b: BackendState, max_tokens: int | None, *, first_token_after: float | None = PREFILL) -> Work:
    work = b.begin(req(max_tokens))
    if first_token_after is not None:
        b.first_token(work, first_token_after)
    return work


def test_an_idle_or_partly_busy_backend_has_no_wait() -> None:
    b = gpu()
    assert forecast(b, req(64)).wait_s == 0.0
    for _ in range(SLOTS - 1):
        send(b, 96)
    f = forecast(b, req(64))
    assert f.wait_s == 0.0 and f.batch == SLOTS
    assert f.total_s == pytest.approx(f.prefill_s + 64 * f.itl_s)


def test_the_wait_is_when_the_shortest_running_request_ends_not_256_tokens_each() -> None:
    b = gpu()
    for n in [32] + [96] * (SLOTS - 1):
        send(b, n)
    start = min(w.first_token for w in b.active.values())  # type: ignore[type-var]
    now = start + 10 * ITL  # ~11 tokens of each are out
    f = forecast(b, req(64), now)
    # the 32-token request ends first, after its remaining ~21 tokens (at the full batch's step,
    # which is also the new request's ITL: it runs in that batch once it has a slot)
    step = f.itl_s
    assert f.wait_s == pytest.approx((32 - (10 * ITL / step + 1)) * step, abs=2 * step)
    assert f.ttft_s == pytest.approx(f.wait_s + f.prefill_s)


def test_queued_requests_are_charged_what_they_asked_for() -> None:
    short, default = gpu(), gpu()
    for b, n in ((short, 16), (default, None)):
        for _ in range(SLOTS):
            send(b, 16)  # the running batch: 16 short requests
        for _ in range(SLOTS):
            send(b, n, first_token_after=None)  # a second batch waiting
    now = max(w.started for w in short.active.values()) + PREFILL
    fs, fd = forecast(short, req(16), now), forecast(default, req(16), now)
    # the queued batch of 16-token requests frees its slots ~16 tokens after it starts
    step = fs.itl_s  # the full batch's step: the running batch's, and the queued one's after it
    assert fs.wait_s == pytest.approx(fs.prefill_idle_s + (16 - 1 + 16) * step, abs=3 * step)
    # requests without max_tokens are charged DEFAULT_OUTPUT_TOKENS each
    assert fd.wait_s > fs.wait_s + (DEFAULT_OUTPUT_TOKENS - 32) * step


def test_finished_requests_stop_counting() -> None:
    b = gpu()
    infos = [send(b, 96) for _ in range(SLOTS + 4)]
    assert forecast(b, req()).wait_s > 0
    for info in infos[:5]:
        b.end(info)
    assert b.inflight == SLOTS - 1 and len(b.active) == SLOTS - 1
    assert forecast(b, req()).wait_s == 0.0


def test_requests_from_elsewhere_count_from_the_engines_metrics() -> None:
    b = gpu()
    b.load = EngineLoad(running=SLOTS, waiting=8)  # another client's load, none of it ours
    assert b.foreign() == SLOTS + 8
    assert forecast(b, req()).wait_s > 0
    mine = [send(b, 64) for _ in range(3)]
    assert b.foreign() == SLOTS + 8  # ours sent after the scrape are not double counted
    b.load = EngineLoad(running=3, waiting=0)  # next scrape: only ours are left
    assert b.foreign() == 0
    for info in mine:
        b.end(info)


def test_a_lagging_scrape_does_not_invent_foreign_requests() -> None:
    b = gpu()
    infos = [send(b, 64) for _ in range(SLOTS + 2)]
    b.load = EngineLoad(running=SLOTS, waiting=2)  # the engine sees exactly ours
    for info in infos[:6]:  # they finish before the next scrape
        b.end(info)
    assert b.foreign() == 0
    assert forecast(b, req()).wait_s == 0.0


def test_only_requests_that_started_at_once_teach_the_ttft_average() -> None:
    b = gpu()
    for _ in range(SLOTS):
        send(b, 64, first_token_after=0.04)
    assert b.ttft.count == SLOTS and b.ttft.value == pytest.approx(0.04)
    queued = b.begin(req(64))
    assert b.active[id(queued)].queued
    b.first_token(queued, 0.9)  # 0.86 s of that was waiting for a slot: the queue model's part
    assert b.ttft.count == SLOTS and b.ttft.value == pytest.approx(0.04)
    assert b.active[id(queued)].first_token is not None


def test_without_a_slot_count_each_request_ahead_costs_a_prefill() -> None:
    b = BackendState(name="x", root="http://x", adapter=adapter("openai"), models={"m"})
    teach(b, 0.1, 0.01)
    b.inflight = 3
    f = forecast(b, req(10))
    assert f.wait_s == pytest.approx(3 * f.prefill_s)
    assert f.prefill_s == pytest.approx(0.1 + 1.5 * 0.01, rel=0.1)  # it joins the others mid-step
