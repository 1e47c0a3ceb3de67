"""The router's learned load curve (routing.load_curve, routing.learning): pure, no sockets, no clock.

The "engines" here are the curve's own model run at a known speed: a backend `speed` times faster
than its prior decodes a step at batch n in prior(n) / speed, and the observations the gateway
would make of it (ITL over a window, TTFT of an unqueued request) are computed from that.
"""

from __future__ import annotations

import math

import orjson
import pytest
from gateway_support import FixedPrediction

from waveidp.engines import adapter
from waveidp.gateway.backends import BackendState
from waveidp.gateway.prediction import Provenance
from waveidp.gateway.request_info import parse_request
from waveidp.gateway.routing import make_policy
from waveidp.gateway.routing.learning import BackendLearning
from waveidp.gateway.routing.load_curve import PRIOR_SIGMA, LoadCurve


class SlopedPrediction(FixedPrediction):
    """A prior whose decode step grows with the batch (as a GPU's does): itl x (1 + slope (n - 1))."""

    slope = 0.1

    def itl_s(self, batch: int, context: int) -> float:
        return self.itl * (1 + self.slope * (batch - 1))


def gpu_prior(provenance: Provenance = "default") -> SlopedPrediction:
    return SlopedPrediction(ttft=0.03, itl=0.01, slots=16, provenance=provenance)


def test_a_default_prior_gives_way_to_the_first_observations() -> None:
    for speed in (0.4, 2.5):  # the benchmark's range: 2.5x slower, 2.5x faster
        curve = LoadCurve.start(gpu_prior(), 0.0)
        curve.observe_itl(curve.prior_itl(2, 200) / speed, 8, 2, 200, 0.0, 0.5)
        assert curve.speed()[0] == pytest.approx(speed, rel=0.1)  # one 8-token report is enough
        # a device off in decode is likely off in prefill the same way: it moves part of the way
        assert min(1.0, speed) < curve.speed()[1] < max(1.0, speed)
        curve.observe_ttft(curve.prior_ttft(100) / speed, 100, 0, 100, 0.6)
        assert curve.speed()[1] == pytest.approx(speed, rel=0.15)


def test_a_calibrated_prior_weighs_more_than_a_default_one() -> None:
    moved = {}
    for provenance in ("default", "reference", "calibrated"):
        curve = LoadCurve.start(gpu_prior(provenance), 0.0)
        curve.observe_ttft(0.03 * 2, 10, 0, 10, 0.1)  # one TTFT twice the prior
        moved[provenance] = 1 / curve.speed()[1]
    assert moved["default"] > moved["reference"] > moved["calibrated"] > 1.0
    assert moved["calibrated"] < 1.25  # one noisy TTFT does not overturn a measured prior
    assert PRIOR_SIGMA["calibrated"] < PRIOR_SIGMA["reference"] < PRIOR_SIGMA["default"]
    curve = LoadCurve.start(gpu_prior("calibrated"), 0.0)
    for i in range(20):  # but evidence that insists does
        curve.observe_itl(curve.prior_itl(1, 100) * 2, 32, 1, 100, 0.0, 0.1 * i)
    assert curve.speed()[0] == pytest.approx(0.5, rel=0.05)


def test_what_is_learned_at_one_load_carries_to_the_load_the_router_adds() -> None:
    """A GPU 2.5x slower than predicted, seen at a batch of 2: its forecast at batch 16 grows as the
    prior's shape says, from the learned speed (issue 17: the learned ITL was right at its load but
    did not grow with the requests the router kept sending)."""
    curve = LoadCurve.start(gpu_prior(), 0.0)
    for i in range(4):
        curve.observe_itl(curve.prior_itl(2, 200) / 0.4, 16, 2, 200, 0.0, 0.2 * i)
    assert curve.decode_s(16, 200) == pytest.approx(curve.prior_itl(16, 200) / 0.4, rel=0.1)
    assert curve.decode_s(16, 200) > 2 * curve.decode_s(2, 200)


def test_a_steeper_load_curve_than_the_prior_says_is_learned_from_several_batch_sizes() -> None:
    prior = gpu_prior()
    curve = LoadCurve.start(prior, 0.0)
    real = lambda n: prior.itl_s(n, 200) * n**0.3  # noqa: E731 - each step grows faster with the batch
    t = 0.0
    for _ in range(15):
        for n in (1, 4, 8, 16):
            t += 0.1
            curve.observe_itl(real(n), 16, n, 200, 0.0, t)
    for n in (1, 16):
        assert curve.decode_s(n, 200) == pytest.approx(real(n), rel=0.1)


def test_prefills_interleaved_with_a_stream_are_not_taken_for_slow_decoding() -> None:
    """A stream's ITL includes the prefills of requests that joined meanwhile. With the decode
    exactly as predicted and the prefill 3x slower, the curve puts the extra time on prefill."""
    curve = LoadCurve.start(gpu_prior(), 0.0)
    t = 0.0
    for i in range(30):
        t += 0.1
        if i % 3 == 0:
            curve.observe_ttft(3 * curve.prior_ttft(200), 200, 0, 200, t)
        landed = 0.002 * (i % 4)  # prior seconds of others' prefill per token of this window
        curve.observe_itl(curve.prior_itl(4, 300) + 3 * landed, 16, 4, 300, landed, t)
    decode, prefill = curve.speed()
    assert decode == pytest.approx(1.0, rel=0.1)
    assert prefill == pytest.approx(1 / 3, rel=0.1)


def test_uncertainty_grows_back_while_a_backend_is_not_observed_but_never_past_the_prior() -> None:
    curve = LoadCurve.start(gpu_prior(), 0.0)
    for i in range(10):
        curve.observe_itl(0.02, 32, 1, 100, 0.0, 0.1 * i)
    settled = curve.sigma(1, 1.0)[0]
    assert settled < 0.1
    assert settled < curve.sigma(1, 60.0)[0] < curve.sigma(1, 300.0)[0]
    assert curve.sigma(1, 1e6)[0] == pytest.approx(PRIOR_SIGMA["default"], rel=0.01)
    assert curve.speed()[0] == pytest.approx(0.5, rel=0.05)  # what it learned stays the best guess


def test_one_outlier_moves_a_settled_estimate_a_bounded_step() -> None:
    curve = LoadCurve.start(gpu_prior(), 0.0)
    for i in range(20):
        curve.observe_itl(0.01, 32, 1, 100, 0.0, 0.1 * i)
    curve.observe_itl(0.2, 32, 1, 100, 0.0, 2.1)  # a 20x stall (GC pause, swap)
    assert 0.7 < curve.speed()[0] < 1.0


def test_without_a_prior_the_first_observation_is_the_estimate() -> None:
    curve = LoadCurve.start(None, 0.0)
    assert curve.sigma(1, 0.0)[0] > 1.5  # nothing known
    curve.observe_ttft(0.3, 50, 0, 50, 0.1)
    curve.observe_itl(0.04, 16, 1, 60, 0.0, 0.2)
    assert curve.decode_s(1, 60) == pytest.approx(0.04, rel=0.1)
    assert curve.prefill_s(50) == pytest.approx(0.3, rel=0.15)
    assert curve.sigma(1, 0.2)[0] < 0.25


def test_bookkeeping_pairs_each_stream_with_the_batch_it_ran_in_and_the_prefills_it_waited_on() -> None:
    """Two streams on a backend 2x slower than its flat prior; the second joins during the first's
    window, so the first ran at a mean batch between 1 and 2 and one prefill landed inside it."""
    prior = FixedPrediction(ttft=0.1, itl=0.01, slots=4, provenance="default")
    learning = BackendLearning()
    a = learning.sent("m", prior, 100, 60, 0, False, 4, 0.0)
    learning.occupancy(1, 0.0)
    learning.first_token(a, 0.2, 0.2)  # its own prefill (2x the prior's 0.1 s)
    window_start = a.area
    b = learning.sent("m", prior, 100, 60, 1, False, 4, 0.5)
    learning.occupancy(2, 0.5)
    learning.first_token(b, 0.23, 0.73)  # 2x its prefill, and 1.5 steps of a's (2x 10 ms)
    # a: 60 tokens at 20 ms from 0.2 s, plus b's prefill (0.2 s) in between: until 1.6 s
    learning.progress(a, 61, 1.6)
    curve = learning.curves["m"]
    assert curve.observations == 3
    assert curve.speed()[0] == pytest.approx(0.5, rel=0.15)
    assert curve.speed()[1] == pytest.approx(0.5, rel=0.25)
    assert (a.area - window_start) / 1.4 == pytest.approx((0.3 * 1 + 1.1 * 2) / 1.4)  # its mean batch
    assert learning.prefill_rate(1.6) > 0


def test_queued_requests_do_not_teach_the_prefill() -> None:
    prior = FixedPrediction(ttft=0.1, itl=0.01, slots=1, provenance="default")
    learning = BackendLearning()
    mark = learning.sent("m", prior, 100, 60, 1, True, 1, 0.0)
    learning.first_token(mark, 3.0, 3.0)  # it waited ~2.9 s for the slot
    assert learning.curves["m"].observations == 0
    assert math.isclose(learning.curves["m"].speed()[1], 1.0)


def test_a_backend_learns_once_the_router_ranks_it_against_another() -> None:
    """The only backend of its models pays nothing for a forecast nobody reads; once a ranking has
    forecast it, what its requests see teaches its curve."""

    def backend(name: str) -> BackendState:
        return BackendState(name, f"http://{name}", adapter("vllm"), {"m"}, predictions={"m": gpu_prior()})

    body = {"model": "m", "messages": [{"role": "user", "content": "hi " * 40}], "max_tokens": 32}
    info = parse_request("chat", orjson.dumps(body))
    alone, other = backend("alone"), backend("other")

    def serve(b: BackendState, t: float) -> None:
        work = b.begin(info)
        b.first_token(work, 0.05)
        b.progress(work, 16, work.started + 0.05 + t)
        b.end(work)

    serve(alone, 0.3)
    assert not alone.learning.curves  # served alone: nothing learned, nothing spent
    make_policy("predicted-latency", affinity=False).rank([alone, other], info, 0.0)
    serve(alone, 0.3)  # 20 ms a token, twice its prior's 10 ms
    assert alone.learning.curves["m"].observations >= 2
    assert alone.learning.curves["m"].speed()[0] < 0.8
