"""Predicted-latency's decisions on learned forecasts: the tier rule, ties under uncertainty,
bounded exploration and the decision trace. Pure: backends are states, requests go through the
same begin/first_token calls the gateway makes, and time is passed in.
"""

from __future__ import annotations

import random
import time

import orjson
import pytest
from gateway_support import FixedPrediction

from waveidp.engines import adapter
from waveidp.fleet.models import Slo
from waveidp.gateway.backends import BackendState
from waveidp.gateway.prediction import Provenance
from waveidp.gateway.request_info import RequestInfo, parse_request
from waveidp.gateway.routing import make_policy
from waveidp.gateway.routing.exploration import EXPLORE_SHARE, PROBE_INTERVAL_S
from waveidp.gateway.routing.forecast import forecast
from waveidp.gateway.routing.predicted_latency import PredictedLatency
from waveidp.gateway.routing.tiers import Tier, slo_tier

STRICT = Slo(ttft_s=1.0, itl_s=0.025)


class SlopedPrediction(FixedPrediction):
    def itl_s(self, batch: int, context: int) -> float:
        return self.itl * (1 + 0.1 * (batch - 1))


def backend(
    name: str, prefill: float, itl: float, slots: int, provenance: Provenance = "default"
) -> BackendState:
    return BackendState(
        name=name,
        root=f"http://{name}",
        adapter=adapter("vllm" if name.startswith("gpu") else "llamacpp"),
        models={"m"},
        max_concurrency=slots,
        predictions={"m": SlopedPrediction(prefill, itl, slots, provenance)},
    )


def learn(b: BackendState, speed: float, n: int = 20) -> BackendState:
    """`n` observations of `b` running `speed` times as fast as its prior, at batches 1-4."""
    curve = b.learning.curve("m", b.predictions["m"])
    for i in range(n):
        batch = 1 + i % 4
        curve.observe_itl(curve.prior_itl(batch, 100) / speed, 32, batch, 100, 0.0, 0.0)
        curve.observe_ttft(curve.prior_ttft(40) / speed, 40, 0, 40, 0.0)
    return b


def req(max_tokens: int = 64, user: str | None = None) -> RequestInfo:
    body: dict[str, object] = {
        "model": "m",
        "messages": [{"role": "user", "content": "hi " * 40}],
        "max_tokens": max_tokens,
    }
    if user:
        body["user"] = user
    return parse_request("chat", orjson.dumps(body))


def running(b: BackendState, n: int) -> None:
    """`n` requests in flight on `b` that have started streaming."""
    for _ in range(n):
        b.begin(req(96)).first_token = time.monotonic()


def test_a_backend_that_meets_the_slo_only_at_a_smaller_batch_is_saturated_not_overflow() -> None:
    """Issue 17's GPU, 2x slower than predicted: 20 ms a token alone, over the SLO's 25 ms a few
    sequences in. Past that batch it is saturated (its room is kept for requests that still meet
    the SLO), and the excess goes to a backend that meets it, then to one that never can; not to
    the GPU, whose learned ITL is over the SLO only because of the load the router put on it."""
    gpu = learn(backend("gpu", 0.03, 0.01, 16), 0.5)
    edge = learn(backend("edge", 0.06, 0.034, 2), 2.0)  # 17 ms a token: meets, 2 slots
    cpu = learn(backend("cpu", 1.3, 0.08, 2), 2.0)  # 40 ms a token: cannot meet
    policy = make_policy("predicted-latency", affinity=False, slo=STRICT)
    assert slo_tier(forecast(gpu, req(), 1.0), STRICT) <= Tier.LIKELY  # forecast to meet
    running(gpu, 4)
    f = forecast(gpu, req(), 1.0)
    assert f.itl_s > 0.025 > f.itl_idle_s
    assert slo_tier(f, STRICT) == Tier.SATURATED
    assert policy.rank([gpu, cpu, edge], req(), 1.0)[0] is edge
    running(edge, 6)  # the edge's queue is now too long too: the request that will miss goes where
    assert policy.rank([gpu, edge, cpu], req(), 1.0)[0] is cpu  # it can harm no one


def test_a_borderline_backend_takes_requests_while_they_likely_meet_but_not_past_the_streams_there() -> None:
    """A GPU that just makes the ITL bound (23 ms of 25 alone) is the only one that can meet it:
    requests go there while they are likely to (rather than to one that never can), and stop
    before one more would cost the streams already there more than it gains."""
    gpu = learn(backend("gpu", 0.03, 0.01, 16), 0.45)
    cpu = learn(backend("cpu", 1.3, 0.08, 2), 1.0)
    policy = make_policy("predicted-latency", affinity=False, slo=STRICT)
    assert slo_tier(forecast(gpu, req(), 1.0), STRICT) == Tier.LIKELY
    assert policy.rank([cpu, gpu], req(), 1.0)[0] is gpu
    taken = 0
    while policy.rank([cpu, gpu], req(), 1.0)[0] is gpu and taken < 16:
        running(gpu, 1)
        taken += 1
    assert 1 <= taken < 6  # its batch stays where the ITL it adds is worth it
    assert slo_tier(forecast(gpu, req(), 1.0), STRICT) == Tier.SATURATED


def test_a_request_never_goes_to_a_backend_forecast_to_miss_while_one_forecast_to_meet_has_room() -> None:
    rng = random.Random(7)
    checked = 0
    for trial in range(300):
        fleet = [
            backend("gpu", 0.03, 0.01, 16, rng.choice(["default", "calibrated"])),
            backend("edge", 0.06, 0.034, 2),
            backend("cpu", 1.3, 0.08, 2),
        ]
        for b in fleet:
            if rng.random() < 0.7:
                learn(b, rng.uniform(0.4, 2.5), n=rng.randint(1, 6))
            running(b, rng.randint(0, 2 * (b.slots or 1)))
        policy = PredictedLatency(affinity=True, slo=STRICT)
        policy.explorer.budget = 1.0  # exploration allowed
        for i in range(3):
            info = req(rng.choice([32, 64, 96]), user=f"u{trial % 5}")
            now = time.monotonic() + i
            ranked = policy.rank(fleet, info, now)
            tiers = [slo_tier(forecast(b, info, now), STRICT) for b in fleet]
            if min(tiers) <= Tier.LIKELY:  # one is forecast to meet it, with room
                checked += 1
                assert slo_tier(forecast(ranked[0], info, now), STRICT) <= Tier.LIKELY, ranked.trace()
    assert checked > 50


def test_when_every_forecast_is_uncertain_it_acts_like_least_outstanding() -> None:
    plain = [BackendState(name=n, root=f"http://{n}", adapter=adapter("vllm"), models={"m"}) for n in "abc"]
    for b, n in zip(plain, (3, 1, 2), strict=True):
        b.inflight = n  # nothing known about any of them: no prior, no observation
    policy = make_policy("predicted-latency", affinity=False)
    lo = make_policy("least-outstanding")
    for _ in range(5):
        assert policy.rank(plain, req(), 0.0)[0] is lo.rank(plain, req(), 0.0)[0] is plain[1]
    # default priors of backends whose forecasts are close: within their spread, fewest outstanding
    close = [backend("gpu-a", 0.03, 0.010, 16), backend("gpu-b", 0.03, 0.016, 16)]
    running(close[0], 3)
    ranked = policy.rank(close, req(), 1.0)
    assert ranked[0].name == "gpu-b" and ranked.reason == "uncertain-tie"
    # once both are known well, the forecast decides
    for b in close:
        learn(b, 1.0, n=40)
    ranked = policy.rank(close, req(), 1.0)
    assert ranked[0].name == "gpu-a" and ranked.reason == "best-forecast"


def test_with_right_priors_and_room_on_the_fast_backend_nothing_is_explored() -> None:
    gpu, edge, cpu = (
        backend("gpu", 0.03, 0.01, 16),
        backend("edge", 0.06, 0.034, 2),
        backend("cpu", 1.3, 0.08, 2),
    )
    learn(gpu, 1.0)  # the GPU has been observed; the edge and the CPU have not (catalog priors)
    policy = PredictedLatency(affinity=False, slo=STRICT)
    for i in range(200):
        ranked = policy.rank([gpu, edge, cpu], req(), 100.0 + i)
        assert ranked[0] is gpu and ranked.reason != "exploration"
    assert policy.explorer is not None and policy.explorer.explored == 0


def test_when_the_favoured_backend_cannot_meet_the_slo_an_uncertain_one_is_explored_within_bounds() -> None:
    gpu = learn(backend("gpu", 0.03, 0.01, 16), 0.35)  # 29 ms a token even alone: overflow
    edge = backend("edge", 0.06, 0.034, 2)  # its catalog prior says 34 ms; it may be faster
    cpu = learn(backend("cpu", 1.3, 0.08, 2), 1.0)
    policy = PredictedLatency(affinity=False, slo=STRICT)
    explorer = policy.explorer
    assert explorer is not None
    first = policy.rank([gpu, edge, cpu], req(), 1.0)
    assert first[0] is edge and first.reason == "exploration"
    probe = edge.begin(req())  # that request is in flight: it will report, no second probe meanwhile
    assert all(policy.rank([gpu, edge, cpu], req(), 1.1 + i * 0.1)[0] is not edge for i in range(5))
    edge.end(probe)  # it ended without teaching anything
    decisions = [policy.rank([gpu, edge, cpu], req(), 1.0 + PROBE_INTERVAL_S + i * 0.05) for i in range(200)]
    explored = sum(r.reason == "exploration" for r in decisions)
    assert 1 <= explored <= 1 + EXPLORE_SHARE * 200  # the budget bounds it
    learn(edge, 2.0)  # once known (17 ms a token), it is chosen on its forecast, not explored
    ranked = policy.rank([gpu, edge, cpu], req(), 12.0)
    assert ranked[0] is edge and ranked.reason == "best-forecast"


def test_a_backend_with_no_prior_gets_its_first_request_as_soon_as_it_is_idle() -> None:
    known = learn(backend("gpu", 0.03, 0.01, 16, "calibrated"), 1.0)
    fresh = BackendState(name="fresh", root="http://fresh", adapter=adapter("openai"), models={"m"})
    policy = PredictedLatency(affinity=False, slo=STRICT)
    assert policy.rank([known, fresh], req(), 0.0)[0] is fresh  # outside the budget, once


def test_the_trace_explains_the_decision_and_is_json() -> None:
    gpu = learn(backend("gpu", 0.03, 0.01, 16), 1.0)
    edge, cpu = backend("edge", 0.06, 0.034, 2), backend("cpu", 1.3, 0.08, 2)
    ranked = make_policy("predicted-latency", affinity=False, slo=STRICT).rank([cpu, edge, gpu], req(), 5.0)
    trace = ranked.trace()
    assert trace is not None and trace is ranked.trace()  # built once
    data = orjson.loads(orjson.dumps(trace.to_dict()))
    assert data["winner"] == "gpu" and data["reason"] == "best-forecast"
    assert data["slo"] == {"ttft_s": 1.0, "itl_s": 0.025}
    first = data["candidates"][0]
    assert first["backend"] == "gpu" and first["tier"] == "meets"
    assert first["itl_s"] == pytest.approx(0.0106, rel=0.1) and first["uncertainty"] < 0.2
    # never observed, the edge's catalog prior (34 ms, a factor of 2 either way) leaves a fair chance
    # that it meets 25 ms: possible, tried before a backend that surely cannot; the CPU (80 ms)
    assert {c["backend"]: c["tier"] for c in data["candidates"][1:]} == {
        "edge": "possible",
        "cpu": "overflow",
    }
    assert all(c["uncertainty"] > 0.5 for c in data["candidates"][1:])  # catalog priors, never observed
    assert "gpu -> " not in trace.summary() and trace.summary().startswith("route m -> gpu (best-forecast")
    lo = make_policy("least-outstanding").rank([cpu, edge, gpu], req(), 5.0).trace()
    assert lo is not None and lo.reason == "fewest-outstanding" and lo.candidates[0].outstanding == 0


def test_the_trace_is_not_built_unless_someone_asks() -> None:
    fleet = [learn(backend("gpu", 0.03, 0.01, 16), 1.0), backend("edge", 0.06, 0.034, 2)]
    ranked = make_policy("predicted-latency", affinity=False, slo=STRICT).rank(fleet, req(), 1.0)
    assert ranked._trace is None and ranked._explain is not None
    trace = ranked.trace()
    assert trace is not None and ranked._explain is None  # built once, its inputs dropped
