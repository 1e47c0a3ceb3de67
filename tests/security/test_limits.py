from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from waveidp.security.limits import Decision, Limiter, Limits, MemoryLimiter, RedisLimiter, go_duration

Factory = Callable[[], Awaitable[Limiter]]


@asynccontextmanager
async def limiter_of(kind: str, redis_url: str | None) -> AsyncIterator[Limiter]:
    lim: Limiter = MemoryLimiter() if kind == "memory" else RedisLimiter(redis_url or "")
    try:
        yield lim
    finally:
        await lim.close()


@pytest.fixture(params=["memory", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("redis_url")) if kind == "redis" else None


def unique(name: str) -> str:
    return f"{name}-{time.monotonic_ns()}"


def test_request_bucket_refuses_with_retry_after_and_openai_headers(kind: str, url: str | None) -> None:
    async def go() -> tuple[list[Decision], Decision]:
        async with limiter_of(kind, url) as lim:
            key, limits = unique("rpm"), Limits(rpm=3)
            allowed = [await lim.acquire(key, limits) for _ in range(3)]
            return allowed, await lim.acquire(key, limits)

    allowed, refused = asyncio.run(go())
    assert all(d.allowed for d in allowed)
    assert [d.headers()["x-ratelimit-remaining-requests"] for d in allowed] == ["2", "1", "0"]
    assert not refused.allowed and refused.reason == "requests"
    h = refused.headers()
    assert h["x-ratelimit-limit-requests"] == "3"
    # 3 per minute refill one request every 20 s; the bucket is (almost) empty
    # (the lower bounds leave room for a loaded machine taking seconds between the calls)
    assert 15 <= refused.retry_after_s <= 20.001  # type: ignore[operator]
    assert 15 <= int(h["Retry-After"]) <= 20
    assert h["x-ratelimit-reset-requests"].endswith("s")


def test_tokens_are_charged_after_the_response(kind: str, url: str | None) -> None:
    async def go() -> tuple[Decision, Decision, Decision]:
        async with limiter_of(kind, url) as lim:
            key, limits = unique("tpm"), Limits(tpm=1000)
            first = await lim.acquire(key, limits)
            assert first.ticket is not None
            await lim.release(first.ticket, 400)  # real usage from the response
            second = await lim.acquire(key, limits)
            assert second.ticket is not None
            await lim.release(second.ticket, 900)  # goes into debt: 1000 - 1300
            return first, second, await lim.acquire(key, limits)

    first, second, third = asyncio.run(go())
    assert first.allowed and first.headers()["x-ratelimit-remaining-tokens"] == "1000"
    assert second.allowed and 599 <= (second.remaining_tokens or 0) <= 620
    assert not third.allowed and third.reason == "tokens"
    # 300 tokens of debt at 1000/min: a token is back after ~18 s
    assert 12 <= (third.retry_after_s or 0) <= 18.1
    assert third.headers()["x-ratelimit-remaining-tokens"] == "0"


def test_concurrency_slots_are_freed_by_release(kind: str, url: str | None) -> None:
    async def go() -> None:
        async with limiter_of(kind, url) as lim:
            key, limits = unique("conc"), Limits(max_concurrent=2)
            a, b = await lim.acquire(key, limits), await lim.acquire(key, limits)
            c = await lim.acquire(key, limits)
            assert a.allowed and b.allowed and not c.allowed and c.reason == "concurrency"
            assert c.headers()["Retry-After"] == "1"
            assert a.ticket is not None
            await lim.release(a.ticket, 0)
            d = await lim.acquire(key, limits)
            assert d.allowed and d.in_flight == 2

    asyncio.run(go())


def test_buckets_refill_over_time_with_an_injected_clock() -> None:
    now = [1000.0]
    lim = MemoryLimiter(clock=lambda: now[0])

    async def go() -> list[bool]:
        limits = Limits(rpm=60)
        results = [(await lim.acquire("k", limits)).allowed for _ in range(61)]
        now[0] += 0.5
        results.append((await lim.acquire("k", limits)).allowed)
        now[0] += 0.5
        results.append((await lim.acquire("k", limits)).allowed)
        return results

    results = asyncio.run(go())
    assert results[:60] == [True] * 60 and results[60:] == [False, False, True]


def test_two_redis_limiters_share_one_bucket(redis_url: str) -> None:
    """Two gateway replicas: their combined requests obey one limit, atomically."""

    async def go() -> tuple[int, int, list[int]]:
        a, b = RedisLimiter(redis_url), RedisLimiter(redis_url)
        try:
            key, limits = unique("shared"), Limits(rpm=50, max_concurrent=1000)
            decisions = await asyncio.gather(*(lim.acquire(key, limits) for lim in [a, b] * 40))
            by_a = sum(d.allowed for d in decisions[0::2])
            by_b = sum(d.allowed for d in decisions[1::2])
            conc_key, conc = unique("conc"), Limits(max_concurrent=3)
            flights = [(await lim.acquire(conc_key, conc)).allowed for lim in (a, b, a, b)]
            return by_a, by_b, [int(f) for f in flights]
        finally:
            await a.close()
            await b.close()

    by_a, by_b, flights = asyncio.run(go())
    assert by_a + by_b == 50 and by_a > 0 and by_b > 0
    assert flights == [1, 1, 1, 0]


def test_redis_refills_by_server_time(redis_url: str) -> None:
    async def go() -> float:
        lim = RedisLimiter(redis_url)
        try:
            key, limits = unique("refill"), Limits(rpm=600)  # one request back every 0.1 s
            while (await lim.acquire(key, limits)).allowed:
                pass
            start = time.monotonic()
            deadline = start + 5
            while not (await lim.acquire(key, limits)).allowed:
                assert time.monotonic() < deadline, "bucket never refilled"
                await asyncio.sleep(0.01)
            return time.monotonic() - start
        finally:
            await lim.close()

    waited = asyncio.run(go())
    # no lower bound: a refill may land between the last drained request and the next try
    assert waited < 3.0


def test_go_duration_formats_like_openai() -> None:
    assert go_duration(0.02) == "20ms"
    assert go_duration(1.5) == "1.5s"
    assert go_duration(360) == "6m0s"
