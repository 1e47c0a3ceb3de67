"""Plumbing for the deploy tests: a store holding the packaged SmolLM2 and Gemma, `wave up` as a
process, its admin API, and a bounded steady load that records every request's outcome."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from waveidp.loopback import free_port

WAVE = Path(sys.executable).with_name("wave")
SMOLLM2 = "smollm2-135m-instruct-q4_1"
GEMMA = "gemma-3-270m-q4_k_m"


def shared_store(gemma_path: Path, smollm2_path: Path) -> Path:
    """The tests' shared model store (`~/.cache/wave-test-models`, where the Gemma fixture puts
    Gemma): SmolLM2 imported into it once."""
    from waveidp import models

    root = gemma_path.parent.parent
    store = models.ModelStore(root)
    if not store.has(SMOLLM2):
        models.import_path(store, smollm2_path, name=SMOLLM2)
    return root


@dataclass
class Up:
    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    home: Path

    @property
    def base(self) -> str:
        return str(self.info["url"]).removesuffix("/v1")

    @property
    def admin_key(self) -> str:
        return (self.home / "admin.key").read_text().strip()

    def admin(
        self, method: str, path: str, body: dict[str, Any] | None = None, key: str | None = None
    ) -> httpx.Response:
        return httpx.request(
            method,
            self.base + "/admin/deployments" + path,
            json=body,
            headers={"authorization": f"Bearer {key or self.admin_key}"},
            timeout=httpx.Timeout(10.0, read=300.0),
        )

    def ready(self) -> dict[str, Any]:
        return httpx.get(self.base + "/ready", timeout=5).json()


@contextlib.contextmanager
def wave_up(home: Path, env: dict[str, str], log: Path) -> Iterator[Up]:
    port = free_port()
    proc = subprocess.Popen(
        [str(WAVE), "up", "--port", str(port), "--json"],
        stdout=subprocess.PIPE,
        stderr=open(log, "ab"),  # noqa: SIM115
        env={**os.environ, **env},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once the gateway answers
        assert line, f"wave up exited: {log.read_text()[-3000:]}"
        yield Up(proc, orjson.loads(line), home)
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@dataclass
class Outcome:
    started: float
    ended: float
    status: int
    backend: str
    stream: bool
    error: str | None = None
    tokens: int = 0


@dataclass
class SteadyLoad:
    """`clients` threads each sending one request after another (every `stream_every`-th a
    stream) until stopped, at most `max_requests` in all or `max_s` seconds."""

    base: str
    key: str
    model: str
    clients: int = 3
    stream_every: int = 3
    max_tokens: int = 8
    extra: dict[str, Any] = field(default_factory=dict)  # more body fields, e.g. ignore_eos
    max_requests: int = 2000
    max_s: float = 240.0
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> SteadyLoad:
        self._t0 = time.monotonic()
        for i in range(self.clients):
            t = threading.Thread(target=self._client, args=(i,), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)

    def wait_for(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        start = len(self.outcomes)
        while len(self.outcomes) - start < count:
            assert time.monotonic() < deadline, (
                f"the load made {len(self.outcomes) - start} requests in {timeout}s"
            )
            time.sleep(0.05)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200 or o.error]

    def _client(self, i: int) -> None:
        n = 0
        with httpx.Client(timeout=120, headers={"authorization": f"Bearer {self.key}"}) as client:
            while not self._stop.is_set() and len(self.outcomes) < self.max_requests:
                if time.monotonic() - self._t0 > self.max_s:
                    return
                n += 1
                stream = (n + i) % self.stream_every == 0
                self.outcomes.append(send(client, self.base, self.model, stream, self.max_tokens, self.extra))


def send(
    client: httpx.Client,
    base: str,
    model: str,
    stream: bool,
    max_tokens: int,
    extra: dict[str, Any] | None = None,
) -> Outcome:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": max_tokens,
        "stream": stream,
        **(extra or {}),
    }
    t0 = time.monotonic()
    try:
        if not stream:
            r = client.post(base + "/v1/chat/completions", json=body)
            tokens = r.json().get("usage", {}).get("completion_tokens", 0) if r.status_code == 200 else 0
            return Outcome(
                t0, time.monotonic(), r.status_code, r.headers.get("x-wave-backend", ""), False, None, tokens
            )
        # Tokens come from the stream's usage event: content chunks undercount them (llama-server
        # sends nothing for a special token ignore_eos lets through, and holds back partial UTF-8).
        body["stream_options"] = {"include_usage": True}
        with client.stream("POST", base + "/v1/chat/completions", json=body) as r:
            events = [line for line in r.iter_lines() if line.startswith("data: ")]
        error = None
        if not events or events[-1] != "data: [DONE]":
            error = "stream did not end with [DONE]"
        elif any('"error"' in e for e in events):
            error = "error event in the stream"
        usage = [u for e in events[:-1] if (u := orjson.loads(e[6:]).get("usage"))]
        tokens = usage[-1].get("completion_tokens", 0) if usage else 0
        return Outcome(
            t0, time.monotonic(), r.status_code, r.headers.get("x-wave-backend", ""), True, error, tokens
        )
    except httpx.HTTPError as exc:
        return Outcome(t0, time.monotonic(), 0, "", stream, f"{type(exc).__name__}: {exc}")
