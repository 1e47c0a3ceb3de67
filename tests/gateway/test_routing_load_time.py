"""Load on demand in routing (pure): a backend whose engine is not loaded carries its predicted load
time in its forecast, so predicted-latency prefers a loaded one while that one meets the SLO and
loads the other only when waiting would cost more; the baselines always put loaded engines first."""

from __future__ import annotations

import time

import orjson
from gateway_support import FixedPrediction

from waveidp.engines import adapter
from waveidp.fleet.models import RoutingConfig, Slo
from waveidp.gateway.backends import BackendState
from waveidp.gateway.exchange import route
from waveidp.gateway.request_info import RequestInfo, parse_request
from waveidp.gateway.residency import Residency
from waveidp.gateway.routing import make_policy
from waveidp.gateway.routing.predicted_latency import forecast
from waveidp.gateway.state import Gateway
from waveidp.security.guard import Authenticator, Guard

SLO = Slo(ttft_s=2.0)
LOAD_S = 3.0


def backend(name: str, *, cold: bool = False) -> BackendState:
    b = BackendState(
        name=name,
        root=f"http://{name}",
        adapter=adapter("llamacpp"),
        models={"m"},
        max_concurrency=2,
        predictions={"m": FixedPrediction(0.1, 0.02, 2)},
    )
    if cold:

        async def nothing() -> None:
            return None

        b.residency = Residency(load=nothing, unload=nothing, predicted_load_s=LOAD_S)
    return b


def req(max_tokens: int = 64) -> RequestInfo:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}
    return parse_request("chat", orjson.dumps(body))


def busy(b: BackendState, n: int, max_tokens: int = 64) -> None:
    for _ in range(n):
        b.begin(req(max_tokens))


def test_the_load_time_is_in_the_forecast_and_shrinks_while_loading() -> None:
    warm, cold = backend("warm"), backend("cold", cold=True)
    now = time.monotonic()
    fw, fc = forecast(warm, req(), now), forecast(cold, req(), now)
    assert fw is not None and fc is not None
    assert fc.wait_s - fw.wait_s == LOAD_S and fc.total_s - fw.total_s == LOAD_S
    assert cold.residency is not None
    cold.residency.state, cold.residency.since = "loading", now - 1.0
    assert cold.ready_in_s(now) == LOAD_S - 1.0
    cold.residency.last_load_s = 1.5  # a load was seen: its real duration replaces the prediction
    assert cold.ready_in_s(now) == 0.5
    cold.residency.state = "loaded"
    assert cold.ready_in_s(now) == 0.0 and warm.ready_in_s(now) == 0.0


def test_a_loaded_backend_wins_while_it_meets_the_slo_and_the_cold_one_is_loaded_when_it_cannot() -> None:
    policy = make_policy("predicted-latency", affinity=False, slo=SLO)
    warm, cold = backend("warm"), backend("cold", cold=True)
    for _ in range(5):
        assert policy.rank([cold, warm], req(), time.monotonic())[0] is warm
    busy(warm, 2)  # one request can wait: its slot frees within the SLO
    assert policy.rank([cold, warm], req(), time.monotonic())[0] is warm
    busy(warm, 6)  # eight requests on two slots: ~4 s before a slot frees, more than the 3 s load
    assert policy.rank([cold, warm], req(), time.monotonic())[0] is cold


def test_without_an_slo_the_cold_backend_is_loaded_only_when_that_finishes_sooner() -> None:
    policy = make_policy("predicted-latency", affinity=False)
    warm, cold = backend("warm"), backend("cold", cold=True)
    busy(warm, 2)
    assert policy.rank([cold, warm], req(), time.monotonic())[0] is warm
    busy(warm, 6)
    assert policy.rank([cold, warm], req(), time.monotonic())[0] is cold


def test_the_baselines_put_a_loaded_engine_first() -> None:
    warm, cold = backend("warm"), backend("cold", cold=True)
    for name in ("round-robin", "least-outstanding"):
        gw = Gateway(
            [cold, warm],
            Guard(Authenticator()),
            routing=RoutingConfig(default_policy=name),  # type: ignore[arg-type]
        )
        assert gw.on_demand
        for _ in range(4):
            assert route(gw, req())[0] is warm, name
