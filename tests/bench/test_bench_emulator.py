"""The engine emulator: OpenAI shapes, step timing from the timing source, batching, finite KV, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from waveidp.bench.emulator import EmulatorConfig, FixedTiming, create_app
from waveidp.loopback import free_port


@contextlib.asynccontextmanager
async def serve(config: EmulatorConfig) -> AsyncIterator[str]:
    runner = web.AppRunner(create_app(config))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def stream(session: aiohttp.ClientSession, url: str, **body: Any) -> list[Any]:
    payload = {
        "model": "m",
        "messages": [{"role": "user", "content": "one two three four"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        **body,
    }
    events: list[Any] = []
    async with session.post(url + "/v1/chat/completions", json=payload) as resp:
        assert resp.status == 200, await resp.text()
        async for line in resp.content:
            if line.startswith(b"data: "):
                data = line[6:].strip()
                events.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return events


async def trace(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(url + "/emulator/trace") as resp:
        return await resp.json()  # type: ignore[no-any-return]


async def metric(session: aiohttp.ClientSession, url: str, name: str) -> float:
    async with session.get(url + "/metrics") as resp:
        text = await resp.text()
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_stream_has_vllm_shape_usage_and_exact_length() -> None:
    async def main() -> None:
        async with (
            serve(EmulatorConfig("m", FixedTiming(step_s=0.002, prefill_s=0.002))) as url,
            aiohttp.ClientSession() as s,
        ):
            ev = await stream(s, url, max_tokens=5, ignore_eos=True)
            assert ev[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
            contents = [e["choices"][0]["delta"]["content"] for e in ev[1:-2]]
            assert len(contents) == 5 and all(contents)
            assert ev[-3]["choices"][0]["finish_reason"] == "length"
            assert ev[-2]["choices"] == [] and ev[-2]["usage"]["completion_tokens"] == 5
            assert ev[-2]["usage"]["prompt_tokens"] == 4
            assert ev[-1] == "[DONE]"
            async with s.post(
                url + "/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 3}
            ) as r:
                body = await r.json()
            assert body["usage"]["completion_tokens"] == 3 and body["choices"][0]["text"]

    asyncio.run(main())


@pytest.mark.serial  # step times against the wall clock
def test_step_times_follow_the_timing_source_without_drift() -> None:
    async def main() -> None:
        timing = FixedTiming(step_s=0.02, prefill_s=0.04)
        async with serve(EmulatorConfig("m", timing)) as url, aiohttp.ClientSession() as s:
            await stream(s, url, max_tokens=26, ignore_eos=True)
            row = (await trace(s, url))["requests"][0]
        # real clock on a shared machine: exactness is tested on a virtual clock (test_bench_scheduler)
        assert row["first_token"] - row["received"] == pytest.approx(0.04, rel=0.1)
        # 25 decode steps: deadlines accumulate, so sleep overshoot does not add up
        assert (row["last_token"] - row["first_token"]) / 25 == pytest.approx(0.02, rel=0.03)

    asyncio.run(main())


def test_speed_factor_scales_every_step() -> None:
    async def main() -> None:
        async with (
            serve(EmulatorConfig("m", FixedTiming(step_s=0.04, prefill_s=0.04), speed=4)) as url,
            aiohttp.ClientSession() as s,
        ):
            await stream(s, url, max_tokens=41, ignore_eos=True)
            row = (await trace(s, url))["requests"][0]
        # tokens sit on the planned grid: one late wake-up shifts a token, not the ones after it
        assert (row["last_token"] - row["first_token"]) / 40 == pytest.approx(0.01, rel=0.05)

    asyncio.run(main())


def test_requests_join_the_running_batch() -> None:
    async def main() -> None:
        timing = FixedTiming(step_s=0.01, prefill_s=0.01)
        async with serve(EmulatorConfig("m", timing)) as url, aiohttp.ClientSession() as s:
            first = asyncio.create_task(stream(s, url, max_tokens=40, ignore_eos=True))
            while await metric(s, url, "vllm:num_requests_running") < 1:
                await asyncio.sleep(0.005)
            second = asyncio.create_task(stream(s, url, max_tokens=5, ignore_eos=True))
            seen_two = False
            while not second.done():
                seen_two = seen_two or await metric(s, url, "vllm:num_requests_running") == 2
                await asyncio.sleep(0.005)
            await first
            rows = sorted((await trace(s, url))["requests"], key=lambda r: r["id"])
        assert seen_two
        a, b = rows
        assert a["first_token"] < b["first_token"] < b["last_token"] < a["last_token"]
        # B joined A's batch instead of waiting for A's 40 tokens (~0.4 s)
        assert b["first_token"] - b["received"] < 0.1

    asyncio.run(main())


def test_full_kv_cache_makes_requests_wait_and_too_long_is_refused() -> None:
    async def main() -> None:
        timing = FixedTiming(step_s=0.005, prefill_s=0.005, kv_tokens=40)  # one (4 + 30)-token request fits
        async with serve(EmulatorConfig("m", timing)) as url, aiohttp.ClientSession() as s:
            first = asyncio.create_task(stream(s, url, max_tokens=30, ignore_eos=True))
            while await metric(s, url, "vllm:num_requests_running") < 1:
                await asyncio.sleep(0.002)
            second = asyncio.create_task(stream(s, url, max_tokens=30, ignore_eos=True))
            while await metric(s, url, "vllm:num_requests_waiting") < 1:
                await asyncio.sleep(0.002)
            assert await metric(s, url, "vllm:kv_cache_usage_perc") == pytest.approx(34 / 40)
            await asyncio.gather(first, second)
            rows = sorted((await trace(s, url))["requests"], key=lambda r: r["id"])
            assert rows[1]["admitted"] >= rows[0]["last_token"]
            payload = {"model": "m", "prompt": "x", "max_tokens": 100}
            async with s.post(url + "/v1/completions", json=payload) as r:
                assert r.status == 400
                assert "KV cache" in (await r.json())["error"]["message"]

    asyncio.run(main())


def test_openai_errors_for_wrong_model_and_bad_json() -> None:
    async def main() -> None:
        async with serve(EmulatorConfig("m", FixedTiming())) as url, aiohttp.ClientSession() as s:
            async with s.post(url + "/v1/chat/completions", json={"model": "other", "messages": []}) as r:
                assert r.status == 404
                err = (await r.json())["error"]
                assert set(err) == {"message", "type", "param", "code"} and "other" in err["message"]
            async with s.post(url + "/v1/chat/completions", data=b"{nope") as r:
                assert r.status == 400 and "not JSON" in (await r.json())["error"]["message"]
            async with s.get(url + "/v1/models") as r:
                assert (await r.json())["data"][0]["id"] == "m"

    asyncio.run(main())


def test_llamacpp_flavour_has_llamacpp_metric_names_and_health() -> None:
    async def main() -> None:
        cfg = EmulatorConfig("m", FixedTiming(step_s=0.002, prefill_s=0.002), engine="llamacpp", max_batch=2)
        async with serve(cfg) as url, aiohttp.ClientSession() as s:
            await stream(s, url, max_tokens=3, ignore_eos=True)
            async with s.get(url + "/health") as r:
                assert await r.json() == {"status": "ok"}
            for name in (
                "llamacpp:requests_processing",
                "llamacpp:requests_deferred",
                "llamacpp:kv_cache_usage_ratio",
                "llamacpp:n_decode_total",
            ):
                await metric(s, url, name)
            assert await metric(s, url, "llamacpp:tokens_predicted_total") == 3
            assert await metric(s, url, "llamacpp:prompt_tokens_total") == 4

    asyncio.run(main())


async def until(check: Any, limit_s: float) -> float:
    """Poll `check()` (async) until it is true; the seconds that took. Fails after `limit_s`."""
    start = time.monotonic()
    while not await check():
        assert time.monotonic() - start < limit_s, f"not true within {limit_s} s"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


def test_clients_that_go_away_are_aborted_at_once_queued_or_mid_stream() -> None:
    async def main() -> None:
        # one (4 + 30)-token request fits the KV; a queued request would cost a 0.5 s prefill
        timing = FixedTiming(step_s=0.02, prefill_s=0.5, kv_tokens=40)
        payload = {
            "model": "m",
            "messages": [{"role": "user", "content": "one two three four"}],
            "stream": True,
            "max_tokens": 30,
            "ignore_eos": True,
        }
        async with serve(EmulatorConfig("m", timing)) as url, aiohttp.ClientSession() as s:

            async def gauges() -> tuple[float, float, float]:
                return (
                    await metric(s, url, "vllm:num_requests_running"),
                    await metric(s, url, "vllm:num_requests_waiting"),
                    await metric(s, url, "vllm:kv_cache_usage_perc"),
                )

            gone = [await s.post(url + "/v1/chat/completions", json=payload) for _ in range(3)]
            await until(lambda: _is(gauges(), (1, 2, 34 / 40)), 10)
            # the running one is mid-stream: it has sent a token (role chunk first, 30 tokens at most)
            lines = [await asyncio.wait_for(gone[0].content.readline(), 5) for _ in range(4)]
            assert b'"delta":{"content":' in b"".join(lines)
            for resp in gone:
                resp.close()
            # without aborts the queued two would each be admitted and prefilled (0.5 s) before a
            # write could fail; the batch and the queue empty well within one prefill
            took = await until(lambda: _is(gauges(), (0, 0, 0)), 5)
            assert took < 0.4, took
            rows = sorted((await trace(s, url))["requests"], key=lambda r: r["id"])
            assert [r["finish_reason"] for r in rows] == ["abort"] * 3
            assert 1 <= rows[0]["output_tokens"] < 30
            assert rows[1]["admitted"] is None and rows[2]["admitted"] is None  # no prefill spent
            assert (
                await metric(s, url, 'vllm:request_success_total{finished_reason="abort",model_name="m"}')
                == 3
            )

            ev = await stream(s, url, max_tokens=3, ignore_eos=True)  # served now, not after 60 tokens
            assert ev[-1] == "[DONE]"
            new = max((await trace(s, url))["requests"], key=lambda r: r["id"])
            assert new["finish_reason"] == "length"
            assert new["admitted"] - new["received"] < 0.1

    asyncio.run(main())


async def _is(values: Any, expected: tuple[float, ...]) -> bool:
    return tuple(await values) == pytest.approx(expected)
