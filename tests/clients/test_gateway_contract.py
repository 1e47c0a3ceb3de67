"""What clients rely on beyond the routes: request ids in the audit log and the logs, errors SDKs
retry correctly (503 + Retry-After while a model may still appear, 404 once it cannot), a busy port,
the 413 and the setting it names, a refusal a client still sending can read, CORS, the ready line."""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from clients_support import EMU, FAKE_UPSTREAM, KEY, LLAMA, WAVE, Fleet, start_gateway

from support import running
from waveidp.loopback import free_port

pytestmark = pytest.mark.engine
AUTH = {"authorization": f"Bearer {KEY}"}
CHAT = {"model": EMU, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
ORIGIN = "http://localhost:3000"


@pytest.fixture(scope="module")
def small(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """A second gateway over the emulator (twice) from a fleet file that sets a small body limit
    and CORS, at debug log level; its URL, fleet file and log."""
    work = tmp_path_factory.mktemp("small")
    config = work / "wave.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "gateway": {"max_body_bytes": 4096, "cors_origins": [ORIGIN]},
                "nodes": [
                    {
                        "name": "n",
                        "backends": [  # two, so that routing decides (and logs its decision)
                            {"name": "emu", "engine": "vllm", "url": fleet.emu, "models": [EMU]},
                            {"name": "emu2", "engine": "vllm", "url": fleet.emu, "models": [EMU]},
                        ],
                    }
                ],
            }
        )
    )
    with contextlib.ExitStack() as stack:
        url, log, _ = start_gateway(stack, work / "home", "--config", str(config), "--log-level", "debug")
        yield url, config, log


def test_request_id_reaches_the_audit_row_and_the_log_line(
    fleet: Fleet, small: tuple[str, Path, Path]
) -> None:
    r = httpx.post(
        fleet.url + "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-request-id": "audit-me-42"}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "audit-me-42"
    refused = httpx.post(fleet.url + "/v1/chat/completions", json=CHAT, headers={"x-request-id": "refused-7"})
    assert refused.status_code == 401 and refused.headers["x-request-id"] == "refused-7"
    rows: list[tuple] = []
    deadline = time.monotonic() + 10
    while len(rows) < 2 and time.monotonic() < deadline:  # the audit writer appends in 50 ms batches
        with contextlib.closing(sqlite3.connect(fleet.home / "audit.db")) as db:
            rows = db.execute(
                "SELECT request_id, status, model FROM audit"
                " WHERE request_id IN ('audit-me-42', 'refused-7') ORDER BY id"
            ).fetchall()
        time.sleep(0.05)
    assert rows == [("audit-me-42", 200, EMU), ("refused-7", 401, None)]
    url, _, log = small
    httpx.post(url + "/v1/chat/completions", json=CHAT, headers={**AUTH, "x-request-id": "log-me-9"})
    routed = [line for line in log.read_text().splitlines() if "[log-me-9]" in line]
    assert routed and "route emu" in routed[0]  # the routing decision's debug line names the request


def test_every_answer_carries_an_id_also_errors_and_other_routes(fleet: Fleet) -> None:
    for r in (
        httpx.get(fleet.url + "/v1/models", headers=AUTH),
        httpx.get(fleet.url + "/v1/nope", headers=AUTH),
        httpx.post(fleet.url + "/v1/chat/completions", content=b"{", headers=AUTH),
        httpx.post(fleet.url + "/v1/messages", json={"model": "x"}, headers=AUTH),
    ):
        assert r.headers["x-request-id"].startswith("req_"), r.text
    unknown = httpx.get(fleet.url + "/v1/nope", headers=AUTH).json()["error"]
    assert unknown["code"] == "unknown_route" and "/v1/responses" in unknown["message"]


def test_routes_the_backend_lacks_are_clear_4xx(fleet: Fleet) -> None:
    tokens = httpx.post(
        fleet.url + "/tokenize", json={"model": LLAMA, "content": "hello world"}, headers=AUTH
    )
    assert tokens.status_code == 200 and len(tokens.json()["tokens"]) == 2
    back = httpx.post(
        fleet.url + "/detokenize", json={"model": LLAMA, "tokens": tokens.json()["tokens"]}, headers=AUTH
    )
    assert back.json()["content"].strip() == "hello world"
    # llama-server has /v1/rerank but was not started with --reranking: its 501 becomes a 400
    rerank = httpx.post(
        fleet.url + "/v1/rerank", json={"model": LLAMA, "query": "q", "documents": ["a"]}, headers=AUTH
    )
    assert rerank.status_code == 400 and rerank.json()["error"]["code"] == "unsupported_by_backend"
    assert "--reranking" in rerank.json()["error"]["message"]
    # llama.cpp has no /score at all: the gateway knows before asking
    score = httpx.post(
        fleet.url + "/v1/score", json={"model": LLAMA, "text_1": "a", "text_2": "b"}, headers=AUTH
    )
    assert score.status_code == 404 and score.json()["error"]["code"] == "unsupported_route"


def test_a_model_not_discovered_yet_is_503_with_retry_after_and_sdks_retry_until_it_is(
    tmp_path: Path,
) -> None:
    port = free_port()  # the upstream comes up on this port after the gateway
    with contextlib.ExitStack() as stack:
        url, log, _ = start_gateway(
            stack, tmp_path / "home", "--upstream", f"http://127.0.0.1:{port}", ready="/health"
        )
        deadline = time.monotonic() + 10  # the line follows the socket's first answer closely
        while "no backend up yet" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "no backend up yet" in log.read_text() and "gateway ready" not in log.read_text()
        r = httpx.post(url + "/v1/chat/completions", json={**CHAT, "model": "late"}, headers=AUTH)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert (
            r.json()["error"]["code"] == "no_healthy_backend"
            and "not known yet" in r.json()["error"]["message"]
        )

        def start_upstream() -> None:
            time.sleep(1.0)
            cmd = [
                sys.executable,
                str(FAKE_UPSTREAM),
                "--port",
                str(port),
                "--name",
                "late",
                "--model",
                "late",
            ]
            stack.enter_context(running(cmd, log=tmp_path / "late.log"))

        threading.Thread(target=start_upstream).start()
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=8)
        answer = client.chat.completions.create(model="late", messages=CHAT["messages"], max_tokens=2)
        assert answer.choices[0].message.content.startswith("late")
        with pytest.raises(openai.NotFoundError):  # now every backend has listed its models
            client.chat.completions.create(model="other", messages=CHAT["messages"], max_tokens=2)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_one_line_and_exit_code_2(workers: str, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        run = subprocess.run(
            [
                str(WAVE),
                "serve",
                "--upstream",
                "http://127.0.0.1:9",
                "--port",
                str(port),
                "--workers",
                workers,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WAVE_HOME": str(tmp_path), "WAVE_API_KEY": KEY},
        )
    assert run.returncode == 2
    assert run.stdout == "" and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert f"could not listen on 127.0.0.1:{port}" in run.stderr and "Traceback" not in run.stderr


def test_the_413_names_the_setting_used(fleet: Fleet, small: tuple[str, Path, Path]) -> None:
    url, config, _ = small
    r = httpx.post(url + "/v1/chat/completions", json={**CHAT, "pad": "x" * 5000}, headers=AUTH)
    assert r.status_code == 413 and r.json()["error"]["message"].endswith(
        f"(gateway.max_body_bytes in {config})"
    )
    # the default: said as such, checked from content-length before a byte of body is read
    with socket.create_connection(("127.0.0.1", int(fleet.url.rsplit(":", 1)[1]))) as s:
        s.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: {40 << 20}\r\n"
                  f"authorization: Bearer {KEY}\r\n\r\n".encode())  # fmt: skip
        s.settimeout(10)
        head = b""
        while b"}}" not in head:  # the head and the body may come in separate reads
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
    head = head.decode()
    assert (
        head.startswith("HTTP/1.1 413")
        and "33554432 bytes (the default; raise it with --max-body-bytes" in head
    )


def test_a_client_still_sending_reads_the_413_not_a_reset(small: tuple[str, Path, Path]) -> None:
    url, _, _ = small
    body = b'{"model": "emu", "messages": [{"role": "user", "content": "' + b"x" * 2_000_000 + b'"}]}'
    request = urllib.request.Request(
        url + "/v1/chat/completions", data=body, headers=AUTH
    )  # urllib: Connection: close
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(request, timeout=30)
    assert exc.value.code == 413 and b"gateway.max_body_bytes" in exc.value.read()


def test_cors_when_configured_and_off_by_default(fleet: Fleet, small: tuple[str, Path, Path]) -> None:
    url, _, _ = small
    preflight = httpx.options(
        url + "/v1/chat/completions",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-request-id",
        },
    )
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers={**AUTH, "origin": ORIGIN})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    other = httpx.post(
        url + "/v1/chat/completions", json=CHAT, headers={**AUTH, "origin": "http://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers
    default = httpx.post(fleet.url + "/v1/chat/completions", json=CHAT, headers={**AUTH, "origin": ORIGIN})
    assert default.status_code == 200 and "access-control-allow-origin" not in default.headers


def test_the_ready_line_is_one_line_in_a_log_file(fleet: Fleet) -> None:
    # /ready may answer a moment before the line is written
    deadline = time.monotonic() + 10
    while "gateway ready" not in fleet.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    (line,) = [line for line in fleet.log_text().splitlines() if "gateway ready" in line]
    assert len(line) > 80 and "API key: from WAVE_API_KEY  console: http://" in line
    assert line.rstrip().endswith("/console")
    assert "smollm2-135m-instruct, smollm2-chat" in line


def test_wave_up_on_a_busy_port_starts_no_engine(tmp_path: Path) -> None:
    """`wave up` checks its port before it starts the engine."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        t0 = time.monotonic()
        run = subprocess.run(
            [str(WAVE), "up", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "WAVE_HOME": str(tmp_path), "WAVE_API_KEY": KEY},
        )
    assert run.returncode == 2 and f"could not listen on 127.0.0.1:{port}" in run.stderr
    assert "Traceback" not in run.stderr and time.monotonic() - t0 < 20
    assert not (tmp_path / "logs" / "embedded.log").exists()  # no engine was started


def test_every_route_name_has_a_path() -> None:
    from waveidp.gateway.request_info import HOT, PATHS
    from waveidp.protocols.routes import API_ROUTES

    assert set(PATHS) - HOT == API_ROUTES
