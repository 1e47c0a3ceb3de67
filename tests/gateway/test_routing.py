"""Routing policies, the circuit breaker and request parsing: pure functions, no sockets."""

from __future__ import annotations

import pytest
from gateway_support import FixedPrediction, teach

from waveidp.engines import EngineLoad, adapter
from waveidp.errors import ApiError
from waveidp.gateway.backends import BackendState
from waveidp.gateway.breaker import CircuitBreaker
from waveidp.gateway.request_info import parse_request
from waveidp.gateway.routing import make_policy
from waveidp.gateway.routing.predicted_latency import estimate
from waveidp.gateway.stream import extract_usage


def backend(name: str, *, engine: str = "vllm", **kw: object) -> BackendState:
    return BackendState(name=name, root=f"http://{name}", adapter=adapter(engine), models={"m"}, **kw)  # type: ignore[arg-type]


def req(max_tokens: int = 100, prompt: str = "hello", user: str | None = None) -> object:
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    if user:
        body["user"] = user
    import orjson

    return parse_request("chat", orjson.dumps(body))


def observed(b: BackendState, ttft: float, itl: float, n: int = 20) -> BackendState:
    teach(b, ttft, itl, n)
    return b


def test_round_robin_takes_turns() -> None:
    bs = [backend("a"), backend("b"), backend("c")]
    p = make_policy("round-robin")
    assert [p.rank(bs, req(), 0)[0].name for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_least_outstanding_counts_ours_and_the_engines_queue() -> None:
    a, b, c = backend("a", inflight=2), backend("b", inflight=0), backend("c", inflight=0)
    c.load = EngineLoad(running=4, waiting=3)  # another gateway's load shows in the engine's metrics
    assert make_policy("least-outstanding").rank([a, b, c], req(), 0)[0] is b


def test_predicted_latency_prefers_the_fast_backend_until_its_queue_costs_more() -> None:
    fast = observed(backend("fast", max_concurrency=4), ttft=0.05, itl=0.01)
    slow = observed(backend("slow", max_concurrency=4), ttft=0.5, itl=0.1)
    p = make_policy("predicted-latency", affinity=False)
    assert p.rank([slow, fast], req(), 0)[0] is fast
    fast.inflight = 40  # 37 requests waiting for 4 slots of ~2.6 s each
    assert p.rank([slow, fast], req(), 0)[0] is slow


def test_predicted_latency_weighs_max_tokens() -> None:
    # quick to start but slow per token vs slow to start but fast per token
    starter = observed(backend("starter"), ttft=0.01, itl=0.05)
    runner = observed(backend("runner"), ttft=1.0, itl=0.005)
    p = make_policy("predicted-latency", affinity=False)
    assert p.rank([runner, starter], req(max_tokens=5), 0)[0] is starter
    assert p.rank([runner, starter], req(max_tokens=1000), 0)[0] is runner


def test_observations_replace_a_default_prior_and_refine_a_calibrated_one() -> None:
    """What a prior weighs is what it deserves: a catalog default (a factor of 2 either way) gives
    way to the first observations; a calibrated one (+-15 %) only to evidence that insists."""
    ests = {}
    for provenance in ("default", "calibrated"):
        b = backend("b", predictions={"m": FixedPrediction(ttft=0.1, itl=0.01, provenance=provenance)})
        assert estimate(b, req(max_tokens=10)) == pytest.approx(0.1 + 10 * 0.01)
        observed(b, 0.2, 0.02, n=1)  # twice as slow as predicted
        ests[provenance] = estimate(b, req(max_tokens=10))
        observed(b, 0.2, 0.02, n=30)
        assert estimate(b, req(max_tokens=10)) == pytest.approx(0.2 + 10 * 0.02, rel=0.1)
    assert ests["default"] == pytest.approx(0.2 + 10 * 0.02, rel=0.25)
    assert ests["calibrated"] < 0.2 + 10 * 0.015


def test_unknown_backends_get_tried() -> None:
    known = observed(backend("known"), ttft=0.2, itl=0.02)
    fresh = backend("fresh")
    p = make_policy("predicted-latency", affinity=False)
    assert {p.rank([known, fresh], req(), 0)[0].name for _ in range(4)} == {"known", "fresh"}


def test_an_unknown_backend_is_explored_one_request_at_a_time() -> None:
    known = observed(backend("known"), ttft=0.2, itl=0.02)
    fresh = backend("fresh", inflight=1)  # its first request has not reported yet
    p = make_policy("predicted-latency", affinity=False)
    assert all(p.rank([fresh, known], req(), 0)[0] is known for _ in range(4))


def test_affinity_keeps_a_session_on_one_backend_unless_much_worse() -> None:
    bs = [observed(backend(n), ttft=0.1, itl=0.01) for n in ("a", "b", "c")]
    p = make_policy("predicted-latency")
    first = {user: p.rank(bs, req(user=user), 0)[0].name for user in ("u1", "u2", "u3", "u4", "u5", "u6")}
    assert len(set(first.values())) > 1  # sessions spread over backends
    for user, name in first.items():
        assert all(p.rank(bs, req(user=user), 0)[0].name == name for _ in range(5))
    sticky = next(b for b in bs if b.name == first["u1"])
    sticky.inflight = 50  # far worse now: affinity yields
    assert p.rank(bs, req(user="u1"), 0)[0] is not sticky


def test_affinity_ignored_for_engines_without_prefix_cache() -> None:
    bs = [observed(backend(n, engine="openai"), ttft=0.1, itl=0.01) for n in ("a", "b")]
    p = make_policy("predicted-latency")
    assert {p.rank(bs, req(user="same"), 0)[0].name for _ in range(4)} == {"a", "b"}


def test_breaker_opens_half_opens_and_closes() -> None:
    br = CircuitBreaker(failure_threshold=3, base_cooldown_s=1.0)
    for t in (0.0, 0.1):
        br.on_failure(t)
    assert br.allows(0.2)
    br.on_failure(0.3)
    assert br.state == "open" and not br.allows(0.5)
    assert br.allows(1.4) and br.state == "half-open"  # one trial after the cooldown
    br.on_attempt()
    assert not br.allows(1.5)  # only one trial at a time
    br.on_failure(1.6)  # trial failed: open again, longer
    assert br.state == "open" and br.cooldown_s == 2.0 and not br.allows(3.0)
    assert br.allows(3.7)
    br.on_attempt()
    br.on_success()
    assert br.state == "closed" and br.allows(3.8)


def test_connection_refused_opens_at_once() -> None:
    br = CircuitBreaker()
    br.on_failure(0.0, fatal=True)
    assert br.state == "open"


def test_parse_request_estimates_prompt_and_reads_fields() -> None:
    info = parse_request(
        "chat",
        b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text", '
        b'"text": "' + b"abcd" * 100 + b'"}]}], "max_completion_tokens": 7, "stream": true}',
    )
    assert (info.model, info.stream, info.max_tokens, info.prompt_tokens_est) == ("m", True, 7, 100)
    assert parse_request("embeddings", b'{"model": "e", "input": ["a", "b"], "stream": true}').stream is False
    assert parse_request("completions", b'{"model": "c", "prompt": [1, 2, 3]}').prompt_tokens_est == 3


@pytest.mark.parametrize(
    ("endpoint", "raw", "param"),
    [
        ("completions", b'{"model": "c"}', "prompt"),
        ("completions", b'{"model": "c", "prompt": {"a": 1}}', "prompt"),
        ("embeddings", b'{"model": "e", "input": 5}', "input"),
        ("chat", b'{"model": "m", "messages": []}', "messages"),
        ("chat", b'{"model": "m", "messages": [{"role": "user"}], "max_tokens": true}', "max_tokens"),
    ],
)
def test_parse_request_rejects_with_the_field(endpoint: str, raw: bytes, param: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_request(endpoint, raw)  # type: ignore[arg-type]
    assert exc.value.status == 400 and exc.value.param == param


def test_extract_usage_reads_only_the_usage_object() -> None:
    body = (
        b'{"id": "x", "choices": [{"message": {"content": "a } b"}}], "usage": {"prompt_tokens": 3, '
        b'"completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 2}}, "timings": {}}'
    )
    assert extract_usage(body) == {
        "prompt_tokens": 3,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert extract_usage(b'{"usage": null}') is None
