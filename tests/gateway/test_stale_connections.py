"""Kept-alive upstream connections that the engine has closed are not backend failures.

llama-server closes a connection after each stream (and idle ones after 5 s); the gateway's pooled
connection then breaks on its next use, before any byte of answer. Such a request is resent at
once on a fresh connection and is not counted by the circuit breaker; a backend that resets every
connection, fresh ones too, still opens it.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import httpx
from gateway_support import HERE, auth

from support import running
from waveidp.engines.llamacpp import LlamaServerSpec
from waveidp.engines.local_files import embedded_model_path, llama_tool
from waveidp.loopback import free_port, wait_http


def _stale_upstream(tmp_path: Path, *flags: str):  # -> context manager of (url, proc)
    port = free_port()
    cmd = [sys.executable, str(HERE / "stale_upstream.py"), "--port", str(port), *flags]
    return f"http://127.0.0.1:{port}", running(cmd, log=tmp_path / f"stale-{port}.log")


async def _load(
    url: str, model: str, n: int, concurrency: int, max_tokens: int, every_nth_plain: int = 2
) -> list[tuple[int, str]]:
    sem = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, str]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": max_tokens,
            "stream": i % every_nth_plain != 0,
        }
        async with sem:
            r = await client.post(url + "/v1/chat/completions", json=body, headers=auth())
            return r.status_code, r.text

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency)) as client:
        return await asyncio.wait_for(asyncio.gather(*(one(client, i) for i in range(n))), 60)


def _counter(gw_url: str, name: str) -> float:
    text = httpx.get(gw_url + "/metrics", headers=auth()).text
    return sum(float(v) for v in re.findall(rf"^{name}_total\{{[^}}]*\}} (\S+)$", text, re.M))


def test_stale_pooled_connections_are_resent_not_counted(tmp_path: Path, gateway) -> None:
    """Every kept-alive connection is reset on its second use: 64 requests at c=8, half streamed,
    all answered 200 and the backend stays in rotation (before the fix: 503 circuit open)."""
    url, ctx = _stale_upstream(tmp_path)
    with ctx as proc:
        wait_http(url + "/v1/models", proc=proc)
        gw = gateway([url], "--engine", "openai")
        results = asyncio.run(_load(gw.url, "m1", 64, 8, 4))
        bad = [(s, t[:200]) for s, t in results if s != 200]
        assert not bad, bad
        stale = httpx.get(url + "/counts").json()["stale_resets"]
        assert stale > 0, "no pooled connection was reused: the test did not exercise staleness"
        assert _counter(gw.url, "wave_upstream_resends") >= 1
        assert _counter(gw.url, "wave_retries") == 0
        assert httpx.get(gw.url + "/ready").status_code == 200
        assert "circuit open" not in gw.log_text()


def test_backend_resetting_every_connection_still_opens_the_breaker(tmp_path: Path, gateway) -> None:
    url, ctx = _stale_upstream(tmp_path, "--reset-completions")
    with ctx as proc:
        wait_http(url + "/v1/models", proc=proc)
        gw = gateway([url], "--engine", "openai")
        statuses: list[tuple[int, str]] = []
        for _ in range(4):
            r = httpx.post(
                gw.url + "/v1/chat/completions",
                json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                headers=auth(),
                timeout=20,
            )
            statuses.append((r.status_code, r.text))
        assert statuses[0][0] == 502, statuses  # tried (and resent) on fresh connections: real failure
        assert statuses[-1][0] == 503 and "circuit open" in statuses[-1][1], statuses
        assert all(s != 200 for s, _ in statuses)


def test_llama_server_behind_the_gateway_at_concurrency_16(tmp_path: Path, gateway) -> None:
    """The shipped llama-server (closes the connection after each stream): 96 requests at c=16,
    mostly streamed: no 503, no health-check failure, and no request retried with backoff (a
    connection the engine closed is resent at once; before the fix each one counted as a failure)."""
    port = free_port()
    spec = LlamaServerSpec(
        binary=llama_tool("llama-server"),
        model=embedded_model_path(),
        port=port,
        alias="m1",
        threads=1,
        parallel=16,
        context=16 * 256,
        embeddings=False,
    )
    with running(spec.command(), log=tmp_path / "llama-server.log") as proc:
        wait_http(spec.url + "/health", proc=proc, timeout=60)
        gw = gateway([spec.url], "--engine", "llamacpp")
        results = asyncio.run(_load(gw.url, "m1", 96, 16, 8, every_nth_plain=8))
        bad = [(s, t[:200]) for s, t in results if s != 200]
        assert not bad, bad
        assert httpx.get(gw.url + "/ready").status_code == 200
        assert _counter(gw.url, "wave_retries") == 0, f"resends: {_counter(gw.url, 'wave_upstream_resends')}"
        log = gw.log_text()
        assert "health check failed" not in log and "circuit open" not in log
