"""Issue 19's attacks, each against a running `wave serve` the way a hostile client on the LAN would
make it, bounded in time: the gateway must refuse each at the least cost and keep serving.

One gateway (in front of `fake_upstream.py`, with OIDC from a local JWKS file and small limits so
that the timeouts and the connection cap show within seconds) serves every test; it runs under
`umask 000`, so that any file it made readable to others would show. Items of the issue that are
not fixed yet are marked xfail(strict): they fail the suite the day they are fixed, so the mark
comes off with the fix.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import psutil
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from support import running
from waveidp.loopback import free_port, wait_http

from .gateway_fixtures import ADMIN_KEY, BOOTSTRAP_KEY, FAKE_UPSTREAM, WAVE, wave_cli

MODEL = "attack-model"
ISSUER = "https://idp.example.test/"
AUDIENCE = "wave"
UPSTREAM_SECRET = "upstream-pass-9f8e7d6c"
METRICS_KEY = "metrics-key-" + "0123456789abcdef" * 2
HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
WRITE_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 8
REFUSED_BODY_BYTES = 24 << 20  # a minute per client: the nested-JSON test's bodies fit
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@dataclass
class Gateway:
    url: str
    port: int
    home: Path
    log: Path
    proc: subprocess.Popen

    @property
    def audit_db(self) -> Path:
        return self.home / "audit.db"


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    work = tmp_path_factory.mktemp("attacks")
    home = work / "home"
    with contextlib.ExitStack() as stack:
        up_port = free_port()
        upstream = stack.enter_context(
            running(
                [sys.executable, FAKE_UPSTREAM, "--port", str(up_port), "--name", "up", "--model", MODEL],
                log=work / "upstream.log",
            )
        )
        wait_http(f"http://127.0.0.1:{up_port}/health", proc=upstream, timeout=20)
        jwks_dir = work / "jwks"
        jwks_dir.mkdir()
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA_KEY.public_key()))
        (jwks_dir / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "rsa-1", "use": "sig"}]}))
        jwks_port = free_port()
        jwks = stack.enter_context(
            running(
                [sys.executable, "-m", "http.server", str(jwks_port), "-b", "127.0.0.1", "-d", jwks_dir],
                log=work / "jwks.log",
            )
        )
        wait_http(f"http://127.0.0.1:{jwks_port}/jwks.json", proc=jwks, timeout=20)
        config = work / "wave.yaml"
        config.write_text(
            "gateway:\n"
            f"  header_timeout_s: {HEADER_TIMEOUT_S}\n"
            f"  body_timeout_s: {BODY_TIMEOUT_S}\n"
            f"  write_timeout_s: {WRITE_TIMEOUT_S}\n"
            f"  max_connections_per_client: {MAX_CONNECTIONS}\n"
            f"  refused_body_bytes_per_minute: {REFUSED_BODY_BYTES}\n"
            "  uncapped_addresses: []\n"  # the test clients are on loopback: cap them too
            "  status_auth: true\n"
        )
        port = free_port()
        log = work / "gateway.log"
        serve = [
            WAVE,
            "serve",
            "--config",
            config,
            "--port",
            str(port),
            "--upstream",
            f"http://wave:{UPSTREAM_SECRET}@127.0.0.1:{up_port}",
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-url",
            f"http://127.0.0.1:{jwks_port}/jwks.json",
        ]
        env = {
            "WAVE_HOME": str(home),
            "WAVE_API_KEY": BOOTSTRAP_KEY,
            "WAVE_ADMIN_KEY": ADMIN_KEY,
            "WAVE_METRICS_KEY": METRICS_KEY,
        }
        # umask 000: a file the gateway does not create private from the start would be 0666
        cmd = ["sh", "-c", 'umask 000 && exec "$0" "$@"', *map(str, serve)]
        proc = stack.enter_context(running(cmd, log=log, env=env))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/ready", proc=proc, timeout=30)
        yield Gateway(url, port, home, log, proc)
        assert "Traceback" not in log.read_text(errors="replace")


# --- helpers ---------------------------------------------------------------------------------------


def connect(gw: Gateway, *, rcvbuf: int | None = None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", gw.port))
    return s


def read_until_closed(s: socket.socket) -> bytes:
    out = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := s.recv(65536):
            out += chunk
    return out


def send_all(s: socket.socket, data: bytes) -> None:
    """Send what the gateway will take; it may close the connection before the end (that is the point)."""
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        s.sendall(data)


def bootstrap() -> dict[str, str]:
    return {"authorization": f"Bearer {BOOTSTRAP_KEY}"}


def metric(gw: Gateway, name: str, **labels: str) -> float:
    text = httpx.get(gw.url + "/metrics", headers=bootstrap(), timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def audit_rows(gw: Gateway, after: int, *, at_least: int = 1) -> list[dict]:
    """Rows with id > `after`, once there are `at_least` of them (the writer commits every 50 ms)."""
    from waveidp.security import audit

    deadline = time.monotonic() + 10
    while True:
        rows = [r for r in audit.rows(gw.audit_db) if r["id"] > after]
        if len(rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def last_audit_id(gw: Gateway) -> int:
    """The newest row's id once the writer has settled (a row of an earlier test's request, such as
    a cut-off stream's, may still be on its way: unchanged for 0.25 s, five commit periods)."""
    from waveidp.security import audit

    def newest() -> int:
        rows = list(audit.rows(gw.audit_db, last=1))
        return rows[0]["id"] if rows else 0

    seen, since, deadline = newest(), time.monotonic(), time.monotonic() + 10
    while time.monotonic() - since < 0.25 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = newest()
        if now != seen:
            seen, since = now, time.monotonic()
    return seen


def disk_bytes(gw: Gateway) -> int:
    return sum(p.stat().st_size for p in gw.home.glob("audit.db*"))


def honest(gw: Gateway) -> httpx.Response:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return httpx.post(gw.url + "/v1/chat/completions", json=body, headers=bootstrap(), timeout=10)


def token(key: object, alg: str, kid: str, **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": now + 300, "wave_models": "*", **claims}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})  # type: ignore[arg-type]


# --- 1 and 11: header sizes and counts, on every route ---------------------------------------------

ROUTES = [
    b"GET /health",
    b"GET /v1/models",
    b"GET /metrics",
    b"POST /v1/chat/completions",
    b"POST /admin/keys",
    b"GET /nowhere",
]


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.decode())
def test_an_8_mib_header_is_431_before_the_app_parses_it(gw: Gateway, route: bytes) -> None:
    before, rss_before = disk_bytes(gw), psutil.Process(gw.proc.pid).memory_info().rss
    started = time.monotonic()
    for _ in range(5):
        with connect(gw) as s:
            send_all(s, route + b" HTTP/1.1\r\nHost: x\r\nX-Request-Id: " + b"r" * (8 << 20) + b"\r\n\r\n")
            answer = read_until_closed(s)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b'"code":"request_header_fields_too_large"' in answer
    assert time.monotonic() - started < 5
    assert honest(gw).status_code == 200
    time.sleep(0.2)  # the audit writer's batch
    # the issue measured +131 MB for ten such requests; a row per refusal is a few hundred bytes
    assert disk_bytes(gw) - before < 64 * 1024
    assert psutil.Process(gw.proc.pid).memory_info().rss - rss_before < 32 << 20


def test_too_many_headers_is_431_and_counted_and_audited(gw: Gateway) -> None:
    counted, after = metric(gw, "wave_requests_total", model="", backend="", status="431"), last_audit_id(gw)
    with connect(gw) as s:
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        send_all(s, b"GET /health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert read_until_closed(s).startswith(b"HTTP/1.1 431 ")
    assert metric(gw, "wave_requests_total", model="", backend="", status="431") == counted + 1
    assert [r["status"] for r in audit_rows(gw, after)] == [431]


def test_honest_heads_split_over_reads_or_pipelined_are_not_refused(gw: Gateway) -> None:
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 200_000}]}).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + BOOTSTRAP_KEY.encode() + b"\r\nConnection: close\r\n"
    )
    with connect(gw) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head[:40])  # the head's first bytes alone, its end in one read with the body
        time.sleep(0.2)
        s.sendall(head[40:] + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        assert read_until_closed(s).startswith(b"HTTP/1.1 200 ")
    with connect(gw) as s:  # 300 pipelined requests: several heads per read, none of them large
        s.sendall(
            b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" * 299
            + b"GET /health HTTP/1.1\r\nConnection: close\r\n\r\n"
        )
        assert read_until_closed(s).count(b"HTTP/1.1 200 ") == 300


# --- 3: slow or idle clients, connections per client ------------------------------------------------


def test_unfinished_heads_and_idle_connections_are_closed_after_the_header_timeout(gw: Gateway) -> None:
    timeouts = metric(gw, "wave_connections_closed_total", reason="header_timeout")
    sockets = [connect(gw) for _ in range(6)]
    for s in sockets[:3]:  # slowloris: a head that never ends
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")
    started = time.monotonic()
    answers = [read_until_closed(s) for s in sockets]  # each returns when the gateway closes it
    waited = time.monotonic() - started
    for s in sockets:
        s.close()
    assert waited < HEADER_TIMEOUT_S + 3
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers[:3]), answers[:3]
    assert answers[3:] == [b"", b"", b""]  # not a byte sent: closed without an answer
    assert metric(gw, "wave_connections_closed_total", reason="header_timeout") == timeouts + 6


def test_a_trickled_body_is_cut_off_after_the_body_timeout(gw: Gateway) -> None:
    with connect(gw) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + BOOTSTRAP_KEY.encode()
            + b"\r\nContent-Length: 100000\r\n\r\n{"
        )
        started = time.monotonic()
        while time.monotonic() - started < BODY_TIMEOUT_S + 3:  # a byte every 0.2 s: never idle
            try:
                s.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
        answer = read_until_closed(s)
    assert time.monotonic() - started < BODY_TIMEOUT_S + 3
    assert answer.startswith(b"HTTP/1.1 408 ") or answer == b"", answer[:200]


def _stall(gw: Gateway, requests: bytes) -> None:
    """Send `requests` and read nothing until the gateway cuts the connection off."""
    stalls = metric(gw, "wave_connections_closed_total", reason="write_timeout")
    with connect(gw, rcvbuf=4096) as s:
        s.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            s.send(requests)
        deadline = time.monotonic() + WRITE_TIMEOUT_S + 10
        while metric(gw, "wave_connections_closed_total", reason="write_timeout") == stalls:
            assert time.monotonic() < deadline, "the stalled reader was never cut off"
            time.sleep(0.2)


def test_a_client_that_stops_reading_is_cut_off_after_the_write_timeout(gw: Gateway) -> None:
    # streams whose reader stops at once: the upstream request ends too. The test upstream sends
    # at most 4096 tokens (~600 KB, which loopback's socket buffers can hold): 40 pipelined.
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "max_tokens": 100_000,
        }
    ).encode()
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    head += b"Authorization: Bearer " + BOOTSTRAP_KEY.encode() + b"\r\n"
    _stall(gw, (head + b"Content-Length: %d\r\n\r\n" % len(body) + body) * 40)
    # pipelined requests (8 KB answers) that fill the socket buffers one after another
    _stall(gw, b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 2000)
    assert honest(gw).status_code == 200


def test_one_address_holds_at_most_max_connections_per_client(gw: Gateway) -> None:
    held = [connect(gw) for _ in range(MAX_CONNECTIONS)]
    try:
        with connect(gw) as extra:
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 429 ") and b"too_many_connections" in answer, answer[:200]
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while True:  # the gateway sees the closes a moment later
        try:
            if honest(gw).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)


# --- 5: a keyed client's body that costs per container -------------------------------------------


def nested_body() -> bytes:
    """40k arrays nested 30 deep (under the depth limit of 32), 2.4 MB: parsing and walking them
    took ~1 s, reading and checking the whole body ~15 ms."""
    nested = "[" * 30 + "1" + "]" * 30
    body = b'{"model": "' + MODEL.encode() + b'", "messages": [{"role": "user", "content": "x"}], "x": ['
    return body + ",".join([nested] * 40_000).encode() + b"]}"


def test_a_body_of_many_nested_arrays_is_refused_at_its_first_chunk_over_the_limit(gw: Gateway) -> None:
    body = nested_body()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
        f"authorization: Bearer {BOOTSTRAP_KEY}\r\ncontent-type: application/json\r\n\r\n"
    ).encode()
    with connect(gw) as s:  # answered before the client has sent a tenth of its body
        s.sendall(head + body[:200_000])
        answer = s.recv(65536).decode()
        assert answer.startswith("HTTP/1.1 400") and "json_too_complex" in answer, answer[:300]
        assert "gateway.max_json_containers" in answer and "connection: close" in answer.lower()
        s.sendall(body[200_000:])  # the rest is read and dropped; the connection closed at its end
        s.shutdown(socket.SHUT_WR)
        assert read_until_closed(s) == b""
    process = psutil.Process(gw.proc.pid)
    cpu = sum(process.cpu_times()[:2])
    with httpx.Client(headers={**bootstrap(), "content-type": "application/json"}, timeout=30) as client:
        for _ in range(5):  # a client still sending reads the answer, then goes on on a new connection
            r = client.post(gw.url + "/v1/chat/completions", content=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == "json_too_complex", r.text[:300]
            assert r.headers["connection"] == "close"
        assert honest(gw).status_code == 200
    assert sum(process.cpu_times()[:2]) - cpu < 0.1  # ~2 ms each here; ~15 read whole and checked
    # Python's urllib sends all of its body before it reads a byte of the answer
    request = urllib.request.Request(gw.url + "/v1/chat/completions", data=body, headers=bootstrap())
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400 and b"json_too_complex" in refused.value.read()


def test_the_rest_of_refused_bodies_is_read_only_within_the_clients_budget(gw: Gateway) -> None:
    """A refused body's rest is read and dropped (so that a client still sending reads the answer)
    for `refused_body_bytes_per_minute` per client; beyond, the connection closes right after the
    answer, and a client still sending sees its write reset. This client (127.0.0.3: the others
    run from 127.0.0.1) has its own budget."""
    body = nested_body()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\n"
        f"authorization: Bearer {BOOTSTRAP_KEY}\r\ncontent-type: application/json\r\n\r\n"
    ).encode()
    before, sent = metric(gw, "wave_connections_closed_total", reason="refused_body_unread"), 0
    while metric(gw, "wave_connections_closed_total", reason="refused_body_unread") == before:
        assert sent < 2 * REFUSED_BODY_BYTES, "the rest of every refused body was read"
        with socket.create_connection(("127.0.0.1", gw.port), 10, source_address=("127.0.0.3", 0)) as s:
            s.sendall(head + body[:200_000])
            assert s.recv(65536).startswith(b"HTTP/1.1 400 ")
            with contextlib.suppress(OSError):  # reset, once the budget is spent
                s.sendall(body[200_000:])
                s.shutdown(socket.SHUT_WR)
            read_until_closed(s)
        sent += len(body)
    assert sent > REFUSED_BODY_BYTES  # the rest of each was read until then


def test_every_refusal_is_counted_and_audited_once_whichever_layer_refuses(gw: Gateway) -> None:
    """The HTTP server's 431, a GET route's 401, an unknown route's 404, a 405, a model route's
    401: one count and one audit row each (`Gateway.refused`)."""
    url = gw.url
    cases = [
        (lambda: httpx.get(url + "/v1/models", headers={"x-pad": "p" * 40_000}, timeout=10), 431),
        (lambda: httpx.get(url + "/v1/models", timeout=10), 401),
        (lambda: httpx.get(url + "/v1/nothing-here", timeout=10), 404),
        (lambda: httpx.put(url + "/v1/models", timeout=10), 405),
        (lambda: httpx.post(url + "/v1/embeddings", json={}, timeout=10), 401),
    ]
    for send, status in cases:
        counted, after = (
            metric(gw, "wave_requests_total", model="", backend="", status=str(status)),
            last_audit_id(gw),
        )
        assert send().status_code == status
        assert metric(gw, "wave_requests_total", model="", backend="", status=str(status)) == counted + 1
        assert [r["status"] for r in audit_rows(gw, after)] == [status], status


def test_a_limited_key_pays_for_the_requests_it_gets_refused(gw: Gateway) -> None:
    """The key's limits come before its body is read: malformed bodies count against its rate."""
    from waveidp.security.keys import KeyStore

    store = KeyStore(gw.home / "keys.db")
    key = store.create("limited-5", models=["*"], rpm=2).key.reveal()
    store.close()
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    statuses = [
        httpx.post(
            gw.url + "/v1/chat/completions", content=b"{not json", headers=headers, timeout=10
        ).status_code
        for _ in range(3)
    ]
    assert statuses == [400, 400, 429]


# --- 4: a JWT whose alg does not fit its key --------------------------------------------------------


def test_a_jwt_whose_alg_does_not_fit_its_key_is_a_401_audited_and_counted(gw: Gateway) -> None:
    counted, after = metric(gw, "wave_requests_total", model="", backend="", status="401"), last_audit_id(gw)
    forged = token(EC_KEY, "ES256", "rsa-1")  # an ES256 header naming the RSA key
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {forged}"}, timeout=10
    )
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_token" and "ES256" in error["message"] and "RSA" in error["message"]
    assert metric(gw, "wave_requests_total", model="", backend="", status="401") == counted + 1
    assert [row["status"] for row in audit_rows(gw, after)] == [401]
    good = token(RSA_KEY, "RS256", "rsa-1")
    r = httpx.post(
        gw.url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {good}"}, timeout=10
    )
    assert r.status_code == 200, r.text


# --- 6: what `wave audit tail` and `wave keys list` print -------------------------------------------

HOSTILE = "\x1b[2J\x1b]8;;http://evil.example/\x07[link=http://evil.example/]x[/link][/]\u202eevil"


def test_audit_tail_and_keys_list_print_client_strings_escaped(gw: Gateway) -> None:
    after = last_audit_id(gw)
    body = {"model": HOSTILE, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=bootstrap(), timeout=10)
    assert r.status_code == 404
    subject = token(RSA_KEY, "RS256", "rsa-1", sub=HOSTILE, wave_models="nothing-*")
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={**body, "model": MODEL},
        headers={"authorization": f"Bearer {subject}"},
        timeout=10,
    )
    assert r.status_code == 403
    assert len(audit_rows(gw, after, at_least=2)) >= 2
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(gw.url + "/admin/keys", json={"name": "hostile", "models": [HOSTILE]}, headers=admin)
    assert r.status_code == 201, r.text
    for args in (["audit", "tail", "-n", "5"], ["keys", "list"]):
        out = subprocess.run(
            [WAVE, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WAVE_HOME": str(gw.home), "COLUMNS": "1000"},  # no cell folded
        )
        assert out.returncode == 0, out.stderr
        printed = out.stdout + out.stderr
        assert "\x1b" not in printed and "\u202e" not in printed and "\x07" not in printed
        assert "\\x1b[2J" in printed and "[link=http://evil.example/]x[/link][/]" in printed
    # an error message quoting a name is escaped as well
    out = wave_cli(gw.home, "keys", "revoke", "[/]\x1b[31m")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "\x1b" not in out.stderr


# --- 7: admin actions -------------------------------------------------------------------------------


def test_admin_actions_are_audited_and_wrong_admin_keys_rate_limited(gw: Gateway) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    after = last_audit_id(gw)
    assert httpx.post(gw.url + "/admin/keys", json={"name": "svc-7"}, headers=admin).status_code == 201
    assert httpx.post(gw.url + "/admin/keys/svc-7/rotate", headers=admin).status_code == 200
    assert httpx.delete(gw.url + "/admin/keys/svc-7", headers=admin).status_code == 200
    rows = audit_rows(gw, after, at_least=3)
    assert [(r["principal"], r["endpoint"], r["status"]) for r in rows] == [
        ("admin", "admin:create-key", 201),
        ("admin", "admin:rotate-key svc-7", 200),
        ("admin", "admin:revoke-key svc-7", 200),
    ]
    after = rows[-1]["id"]
    wrong = {"authorization": "Bearer wave-admin-guess-" + "x" * 30}
    statuses = [
        httpx.post(gw.url + "/admin/keys", json={"name": "x"}, headers=wrong).status_code for _ in range(12)
    ]
    # 60 a minute from one address, a wrong key counting 6: the 10 allowed, then 429 with Retry-After
    assert statuses[:9] == [401] * 9 and statuses[-1] == 429, statuses
    refused = httpx.get(gw.url + "/admin/keys", headers=admin)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    rows = audit_rows(gw, after, at_least=13)
    assert {r["principal"] for r in rows} == {"-"} and [r["status"] for r in rows][:9] == [401] * 9


@pytest.mark.parametrize(
    ("variable", "value", "says", "host"),
    [
        ("WAVE_API_KEY", "hunter2", "too short", "0.0.0.0"),
        ("WAVE_ADMIN_KEY", "a" * 64, "too predictable", "0.0.0.0"),
        ("WAVE_METRICS_KEY", "changeme", "too short", "127.0.0.1"),
    ],
)
def test_weak_secrets_are_refused_on_any_address(
    tmp_path: Path, variable: str, value: str, says: str, host: str
) -> None:
    env = {**os.environ, "WAVE_HOME": str(tmp_path), "WAVE_API_KEY": BOOTSTRAP_KEY, variable: value}
    r = subprocess.run(
        [WAVE, "serve", "--upstream", "http://127.0.0.1:9", "--host", host, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert r.returncode == 2 and variable in r.stderr and says in r.stderr, r.stderr
    assert value not in r.stderr.replace(variable, "") and "Traceback" not in r.stderr


# --- 8: credentials in /ready; /metrics and /ready behind a key -------------------------------------


def test_ready_never_shows_upstream_credentials_and_status_needs_a_key(gw: Gateway) -> None:
    full = httpx.get(gw.url + "/ready", headers=bootstrap(), timeout=10)
    assert full.status_code == 200 and "upstream0" in full.json()["backends"]
    assert UPSTREAM_SECRET not in full.text and "wave:***@" in full.text
    bare = httpx.get(gw.url + "/ready", timeout=10)  # a probe without a key reads the status only
    assert bare.status_code == 200 and bare.json() == {"status": "ready"}
    assert httpx.get(gw.url + "/metrics", timeout=10).status_code == 401
    wrong = {"authorization": "Bearer not-the-metrics-key"}
    assert httpx.get(gw.url + "/metrics", headers=wrong, timeout=10).status_code == 401
    assert httpx.get(gw.url + "/ready", headers=wrong, timeout=10).status_code == 401
    prometheus = {"authorization": f"Bearer {METRICS_KEY}"}
    assert "wave_requests_total" in httpx.get(gw.url + "/metrics", headers=prometheus, timeout=10).text
    # the metrics key reads the status and opens no model
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=prometheus, timeout=10)
    assert r.status_code == 401


# --- 9: private files ---------------------------------------------------------------------------------


def test_secret_bearing_files_are_private_even_under_umask_000(gw: Gateway) -> None:
    assert honest(gw).status_code == 200  # the audit database and its WAL exist
    audit_rows(gw, 0)
    names = ["audit.db", "audit.db-wal", "audit.db-shm", "keys.db", "keys.db-wal", "keys.db-shm"]
    for name in names:
        mode = stat.S_IMODE((gw.home / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {mode:o}"
    assert stat.S_IMODE(gw.home.stat().st_mode) == 0o700


# --- 11: --no-auth prints no key ----------------------------------------------------------------------


def test_no_auth_on_loopback_makes_and_prints_no_key(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "WAVE_API_KEY"}
    with running(
        [WAVE, "serve", "--no-auth", "--upstream", "http://127.0.0.1:9", "--port", str(port)],
        log=tmp_path / "serve.log",
        env={**env, "WAVE_HOME": str(tmp_path / "home")},
    ) as proc:
        wait_http(f"http://127.0.0.1:{port}/health", proc=proc, timeout=30)
        deadline = time.monotonic() + 10
        while "API key:" not in (tmp_path / "serve.log").read_text():  # no backend up: not "ready"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    line = (tmp_path / "serve.log").read_text()
    assert "API key: none needed (--no-auth)" in line and "wave-" not in line
    assert not (tmp_path / "home" / "gateway.key").exists()


# --- not fixed yet (phase 2 of the issue: the request path) ---------------------------------------------


def test_a_request_id_is_stored_bounded(gw: Gateway) -> None:
    after = last_audit_id(gw)
    sent = {"x-request-id": "i" * 20_000}
    r = httpx.post(gw.url + "/v1/chat/completions", json={}, headers=sent, timeout=10)
    rows = audit_rows(gw, after)
    assert rows and 0 < len(rows[-1]["request_id"]) <= 128
    assert rows[-1]["request_id"] == r.headers["x-request-id"]  # replaced by one the gateway made


def test_unknown_model_names_grow_neither_metrics_nor_audit_rows(gw: Gateway) -> None:
    before = len(httpx.get(gw.url + "/metrics", headers=bootstrap(), timeout=10).content)
    unknown = metric(gw, "wave_requests_total", model="(unknown)", backend="", status="404")
    after = last_audit_id(gw)
    for i in range(20):
        body = {"model": f"{i}-" + "m" * 20_000, "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=bootstrap(), timeout=10)
        assert r.status_code == 404
    assert len(httpx.get(gw.url + "/metrics", headers=bootstrap(), timeout=10).content) - before < 2_000
    assert metric(gw, "wave_requests_total", model="(unknown)", backend="", status="404") == unknown + 20
    rows = audit_rows(gw, after, at_least=20)
    assert len(rows) == 20 and all(len(r["model"]) <= 256 for r in rows)
    assert rows[0]["model"].startswith("0-mmm") and rows[0]["model"].endswith("(20002 chars)")


def test_a_key_sees_only_the_models_it_may_use(gw: Gateway) -> None:
    from waveidp.security.keys import KeyStore

    store = KeyStore(gw.home / "keys.db")
    key = store.create("scoped-10", models=["other-*"]).key.reveal()
    store.close()
    scoped = {"authorization": f"Bearer {key}"}
    body = {"model": "other-nope", "messages": [{"role": "user", "content": "hi"}]}  # in scope, not served
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=scoped, timeout=10)
    assert r.status_code == 404 and MODEL not in r.text, r.text
    body["model"] = MODEL  # served, out of scope: 403, naming only what was asked
    r = httpx.post(gw.url + "/v1/chat/completions", json=body, headers=scoped, timeout=10)
    assert r.status_code == 403
    assert httpx.get(gw.url + "/v1/models", headers=scoped, timeout=10).json()["data"] == []
    r = httpx.get(gw.url + f"/v1/models/{MODEL}", headers=scoped, timeout=10)
    assert r.status_code == 404 and r.text.count(MODEL) == 1  # the name asked, not listed as available
    assert [
        m["id"] for m in httpx.get(gw.url + "/v1/models", headers=bootstrap(), timeout=10).json()["data"]
    ] == [MODEL]
