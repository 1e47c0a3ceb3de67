"""Security across `wave serve --workers 2`, each against the running gateway: keys made or revoked
through one worker hold on every worker, per-key limits are never counted per worker, and the
audit chain stays whole with several writers."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from support import running
from waveidp.loopback import free_port, wait_http
from waveidp.security.audit import verify
from waveidp.security.keys import KeyStore

from .gateway_fixtures import ADMIN_KEY, BOOTSTRAP_KEY, FAKE_UPSTREAM, RunningGateway, start_gateway, wave_cli

CHAT = "/v1/chat/completions"
MODEL = "m"
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
CLIENTS = 16  # keep-alive connections; all on one worker of two: p = 2 * 2**-16
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("upstream") / "fake.log"
    cmd = [sys.executable, FAKE_UPSTREAM, "--port", str(port), "--model", MODEL]
    with running(cmd, log=log) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/health", proc=proc, timeout=20)
        yield url


def two_workers(stack: contextlib.ExitStack, home: Path, upstream: str, *args: str) -> RunningGateway:
    g = start_gateway(stack, home, [upstream], "--workers", "2", *args)
    deadline = time.monotonic() + 20
    while "gateway ready" not in g.log_text():  # every worker listens
        assert time.monotonic() < deadline and g.proc.poll() is None, g.log_text()
        time.sleep(0.02)  # polling the log file
    return g


@contextlib.contextmanager
def clients(g: RunningGateway, key: str) -> Iterator[list[httpx.Client]]:
    """CLIENTS keep-alive connections, spread over both workers (checked)."""
    cs = [
        httpx.Client(base_url=g.url, headers={"authorization": f"Bearer {key}"}, timeout=10)
        for _ in range(CLIENTS)
    ]
    try:
        for c in cs:
            c.get("/health")
        port = int(g.url.rsplit(":", 1)[1])
        workers = psutil.Process(g.proc.pid).children()
        holding = {
            w.pid
            for w in workers
            for conn in w.net_connections(kind="tcp")
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr and conn.laddr.port == port
        }
        assert len(workers) == 2 and holding == {w.pid for w in workers}
        yield cs
    finally:
        for c in cs:
            c.close()


def test_a_key_made_and_revoked_on_one_worker_holds_on_every_worker(upstream: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        g = two_workers(stack, tmp_path / "home", upstream)
        made = httpx.post(g.url + "/admin/keys", json={"name": "alice"}, headers=ADMIN, timeout=10)
        assert made.status_code == 201, made.text
        with clients(g, made.json()["key"]) as cs:
            assert [c.post(CHAT, json=BODY).status_code for c in cs] == [200] * CLIENTS
            gone = httpx.delete(g.url + "/admin/keys/alice", headers=ADMIN, timeout=10)
            assert gone.status_code == 200, gone.text
            answers = [c.post(CHAT, json=BODY) for c in cs]  # the very next request on each connection
        assert [a.status_code for a in answers] == [401] * CLIENTS
        assert {a.json()["error"]["code"] for a in answers} == {"api_key_revoked"}


def test_limits_without_redis_are_refused_at_start(upstream: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = KeyStore(home / "keys.db")
    store.create("limited", rpm=5)
    store.close()
    r = wave_cli(home, "serve", "--port", str(free_port()), "--upstream", upstream, "--workers", "2")
    assert r.returncode == 2
    assert "limited" in r.stderr and "--redis" in r.stderr and "Traceback" not in r.stderr


def test_a_limited_key_made_while_running_without_redis_is_refused_not_counted_per_worker(
    upstream: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        g = two_workers(stack, tmp_path / "home", upstream)
        made = httpx.post(g.url + "/admin/keys", json={"name": "bob", "rpm": 5}, headers=ADMIN, timeout=10)
        r = httpx.post(
            g.url + CHAT, json=BODY, headers={"authorization": f"Bearer {made.json()['key']}"}, timeout=10
        )
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "limits_need_redis" and "--redis" in error["message"]


@pytest.mark.servers
def test_two_workers_share_one_rate_limit_through_redis(
    upstream: str, redis_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = KeyStore(home / "keys.db")
    key = store.create("shared", rpm=5).key.reveal()
    store.close()
    with contextlib.ExitStack() as stack:
        g = two_workers(stack, home, upstream, "--redis", redis_url)
        with clients(g, key) as cs:
            statuses = [c.post(CHAT, json=BODY).status_code for c in cs]
    assert statuses.count(200) == 5 and statuses.count(429) == CLIENTS - 5


def test_the_audit_chain_stays_valid_with_two_writers_under_load(upstream: str, tmp_path: Path) -> None:
    per_client = 15
    home = tmp_path / "home"
    with contextlib.ExitStack() as stack:
        g = two_workers(stack, home, upstream)
        with clients(g, BOOTSTRAP_KEY) as cs, ThreadPoolExecutor(CLIENTS) as pool:

            def run(c: httpx.Client) -> list[int]:
                return [c.post(CHAT, json=BODY).status_code for _ in range(per_client)]

            results = list(pool.map(run, cs))
        assert all(s == 200 for r in results for s in r)
        g.proc.terminate()  # the workers flush their audit queues as they stop
        assert g.proc.wait(timeout=20) == 0
    verdict = verify(home / "audit.db")
    assert verdict.ok, verdict
    assert verdict.rows == CLIENTS * per_client
    r = wave_cli(home, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
