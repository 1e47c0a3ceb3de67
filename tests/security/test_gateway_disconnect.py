"""A streaming client that hangs up while the engine is still prefilling gives its concurrency slot
back at once (and the gateway drops the upstream request), not when the first token comes."""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from support import running
from waveidp.loopback import free_port, wait_http
from waveidp.security.keys import KeyStore

from .gateway_fixtures import FAKE_UPSTREAM, RunningGateway, start_gateway

FIRST_TOKEN_S = 15  # the slow engine's prefill; the slot must come back long before it
SLOW, FAST = "slow-prefill", "fast-model"
CHAT = "/v1/chat/completions"


def _fake(stack: contextlib.ExitStack, work: Path, name: str, model: str, ttft: float) -> str:
    port = free_port()
    cmd = [sys.executable, str(FAKE_UPSTREAM), "--port", str(port), "--name", name, "--model", model]
    proc = stack.enter_context(running([*cmd, "--ttft", str(ttft)], log=work / f"{name}.log"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/health", proc=proc, timeout=20)
    return url


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, str]]:
    work = tmp_path_factory.mktemp("disconnect")
    with contextlib.ExitStack() as stack:
        slow = _fake(stack, work, "slow", SLOW, FIRST_TOKEN_S)
        fast = _fake(stack, work, "fast", FAST, 0)
        yield start_gateway(stack, work / "home", [slow, fast]), slow


def _upstream_running(url: str) -> int:
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("vllm:num_requests_running"):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_hangup_before_first_token_frees_the_slot(setup: tuple[RunningGateway, str]) -> None:
    gw, slow = setup
    keys = KeyStore(gw.home / "keys.db")  # the database the gateway reads
    key = keys.create("one-at-a-time", max_concurrent=1).key.reveal()
    keys.close()
    body = orjson.dumps({"model": SLOW, "messages": [{"role": "user", "content": "hi"}], "stream": True})
    addr = urlsplit(gw.url)
    request = (
        f"POST {CHAT} HTTP/1.1\r\nhost: {addr.netloc}\r\nauthorization: Bearer {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode() + body
    client = socket.create_connection((addr.hostname, addr.port), timeout=10)
    client.sendall(request)
    deadline = time.monotonic() + 10
    while _upstream_running(slow) < 1:  # the gateway is now waiting for the first token
        assert time.monotonic() < deadline, "the stream never reached the slow engine"
        time.sleep(0.02)
    fast = {"model": FAST, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    headers = {"authorization": f"Bearer {key}"}
    held = httpx.post(gw.url + CHAT, json=fast, headers=headers, timeout=10)
    assert held.status_code == 429 and held.json()["error"]["code"] == "rate_limit_concurrency", held.text

    hung_up = time.monotonic()
    client.close()
    while (r := httpx.post(gw.url + CHAT, json=fast, headers=headers, timeout=10)).status_code != 200:
        assert r.status_code == 429, r.text
        assert time.monotonic() - hung_up < 3, "the slot is still held after the client hung up"
        time.sleep(0.05)
    metrics = httpx.get(gw.url + "/metrics", timeout=5).text
    assert f'wave_requests_total{{backend="",model="{SLOW}",status="499"}} 1.0' in metrics, metrics
