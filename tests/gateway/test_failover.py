"""Failure handling: a backend killed mid-load, a backend answering 5xx, a client that hangs up."""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
from gateway_support import auth

from waveidp.loopback import wait_http

CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}]}


async def _plain(client: httpx.AsyncClient, url: str) -> tuple[int, str]:
    r = await client.post(url + "/v1/chat/completions", json={**CHAT, "max_tokens": 20}, headers=auth())
    return r.status_code, r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else r.text


async def _stream(
    client: httpx.AsyncClient, url: str, started: list[bool], all_started: asyncio.Event, n: int
) -> dict:
    events: list[dict | str] = []
    async with client.stream(
        "POST", url + "/v1/chat/completions", headers=auth(), json={**CHAT, "max_tokens": 100, "stream": True}
    ) as r:
        assert r.status_code == 200
        backend = r.headers["x-wave-backend"]
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[6:]
            events.append(data if data == "[DONE]" else orjson.loads(data))
            if len(events) == 1:
                started.append(True)
                if len(started) == n:
                    all_started.set()
    return {"backend": backend, "events": events}


def test_killing_a_backend_mid_load(fake_upstream, gateway) -> None:
    """Requests not yet streaming succeed elsewhere; streams on the dead backend end with an error
    event and [DONE]; no answer mixes two backends; everything finishes within the test's bound."""
    a = fake_upstream("alpha", model=["m1"], itl=0.02)
    b = fake_upstream("beta", model=["m1"], itl=0.02)
    gw = gateway([a.url, b.url], "--policy", "round-robin")

    async def scenario() -> tuple[list, list]:
        async with httpx.AsyncClient(timeout=20) as client:
            started: list[bool] = []
            all_started = asyncio.Event()
            streams = [
                asyncio.create_task(_stream(client, gw.url, started, all_started, 8)) for _ in range(8)
            ]
            plains = [asyncio.create_task(_plain(client, gw.url)) for _ in range(8)]
            await asyncio.wait_for(all_started.wait(), 10)
            a.proc.kill()  # mid-stream: every stream has its first token, none has its 100th
            later = [asyncio.create_task(_plain(client, gw.url)) for _ in range(8)]
            return (
                await asyncio.wait_for(asyncio.gather(*streams), 30),
                await asyncio.wait_for(asyncio.gather(*plains, *later), 30),
            )

    t0 = time.monotonic()
    streams, plains = asyncio.run(scenario())
    assert time.monotonic() - t0 < 30
    assert all(status == 200 for status, _ in plains), plains
    assert all(text.split()[0] in {"alpha", "beta"} for _, text in plains)
    broken = [s for s in streams if s["backend"] == "upstream0"]
    whole = [s for s in streams if s["backend"] == "upstream1"]
    assert broken and whole
    for s in broken:
        assert s["events"][-1] == "[DONE]"
        error = s["events"][-2]
        assert error["error"]["type"] == "upstream_error" and "upstream0" in error["error"]["message"]
    for s in whole:
        texts = [e["choices"][0]["delta"]["content"] for e in s["events"][:-1] if isinstance(e, dict)]
        assert texts[0] == "beta" and len(texts) == 100 and s["events"][-1] == "[DONE]"
    # no splicing: every content event of every stream came from the backend that started it
    for s in streams:
        first = next(e for e in s["events"] if isinstance(e, dict) and "choices" in e)
        assert first["choices"][0]["delta"]["content"] == ("alpha" if s["backend"] == "upstream0" else "beta")
    metrics = httpx.get(gw.url + "/metrics").text
    assert 'wave_stream_errors_total{backend="upstream0",model="m1"}' in metrics


def test_5xx_backend_is_retried_elsewhere_then_its_circuit_opens(fake_upstream, gateway) -> None:
    bad = fake_upstream("bad", model=["m1"], fail=True)
    good = fake_upstream("good", model=["m1"])
    gw = gateway([bad.url, good.url], "--policy", "round-robin")
    for _ in range(10):
        r = httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 2}, headers=auth())
        assert r.status_code == 200 and r.headers["x-wave-backend"] == "upstream1"
    ready = httpx.get(gw.url + "/ready").json()
    assert "circuit open" in ready["backends"]["upstream0"]
    metrics = httpx.get(gw.url + "/metrics").text
    retried = [line for line in metrics.splitlines() if line.startswith("wave_retries_total")]
    assert retried and 1 <= float(retried[0].split()[-1]) <= 4


def test_all_backends_failing_is_502_with_each_reason(fake_upstream, gateway) -> None:
    bad = fake_upstream("bad", model=["m1"], fail=True)
    gw = gateway([bad.url])
    r = httpx.post(gw.url + "/v1/chat/completions", json={**CHAT, "max_tokens": 2}, headers=auth())
    assert r.status_code == 502
    err = r.json()["error"]
    assert err["code"] == "upstream_error" and "upstream0: HTTP 500" in err["message"]


def test_client_disconnect_cancels_the_upstream_request(fake_upstream, gateway) -> None:
    up = fake_upstream("slow", model=["m1"], itl=0.05)
    gw = gateway([up.url])

    async def running(client: httpx.AsyncClient) -> float:
        text = (await client.get(up.url + "/metrics")).text
        line = next(x for x in text.splitlines() if x.startswith("vllm:num_requests_running"))
        return float(line.split()[-1])

    async def until(client: httpx.AsyncClient, value: float) -> None:
        deadline = time.monotonic() + 5
        while await running(client) != value:
            assert time.monotonic() < deadline, f"upstream running count never became {value}"
            await asyncio.sleep(0.05)

    async def scenario(stream: bool) -> None:
        async with httpx.AsyncClient(timeout=30) as client, httpx.AsyncClient() as probe:
            body = {**CHAT, "max_tokens": 400, "stream": stream}
            task = asyncio.create_task(
                client.post(gw.url + "/v1/chat/completions", json=body, headers=auth())
            )
            await until(probe, 1)
            task.cancel()  # hangs up: 400 tokens x 50 ms would keep the engine busy for 20 s
            await until(probe, 0)

    asyncio.run(scenario(stream=True))
    asyncio.run(scenario(stream=False))


def test_gap_timeout_ends_a_stalled_stream_with_an_error_event(fake_upstream, gateway, tmp_path) -> None:
    up = fake_upstream("stall", model=["m1"], itl=3.0)
    cfg = tmp_path / "wave.yaml"
    cfg.write_text(f"""
version: 1
nodes:
  - name: local
    backends:
      - {{name: stall, engine: vllm, url: "{up.url}", models: [m1]}}
gateway:
  chunk_gap_timeout_s: 0.5
""")
    gw = gateway([], "--config", str(cfg))
    t0 = time.monotonic()
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={**CHAT, "max_tokens": 5, "stream": True},
        headers=auth(),
        timeout=10,
    )
    assert time.monotonic() - t0 < 2.5
    lines = [line for line in r.text.splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    assert "sent nothing for 0.5s" in orjson.loads(lines[-2][6:])["error"]["message"]
    wait_http(gw.url + "/ready", timeout=5)
