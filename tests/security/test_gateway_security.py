"""The Must-hold security behaviour, each case against a running `wave serve`."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from waveidp.security.keys import KeyStore

from .gateway_fixtures import (
    ADMIN_KEY,
    BOOTSTRAP_KEY,
    MODEL,
    SLOW_MODEL,
    RunningGateway,
    start_gateway,
    start_llama,
    start_slow_upstream,
    wave_cli,
)

pytestmark = pytest.mark.engine
CHAT = "/v1/chat/completions"
SECRETS = [BOOTSTRAP_KEY, ADMIN_KEY]


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    workdir = tmp_path_factory.mktemp("upstreams")
    with contextlib.ExitStack() as stack:
        yield [start_llama(stack, workdir), start_slow_upstream(stack, workdir)]


@pytest.fixture(scope="module")
def gw(upstreams: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    home = tmp_path_factory.mktemp("gateway-home")
    with contextlib.ExitStack() as stack:
        yield start_gateway(stack, home, upstreams, "--max-body-bytes", "65536")


@pytest.fixture(scope="module")
def keys(gw: RunningGateway) -> Iterator[KeyStore]:
    store = KeyStore(gw.home / "keys.db")  # the same database `wave keys` and the gateway use
    yield store
    store.close()


def chat(gw: RunningGateway, key: str | None, *, model: str = MODEL, **extra: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, **extra}
    return httpx.post(gw.url + CHAT, json=body, headers=headers, timeout=30)


def assert_error(
    r: httpx.Response, status: int, code: str | None = None, *, secrets: list[str] = SECRETS
) -> dict:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    for secret in secrets:
        assert secret not in r.text and secret not in str(r.headers)
    return error


def test_no_key_and_wrong_key_are_401(gw: RunningGateway) -> None:
    assert_error(chat(gw, None), 401, "missing_api_key")
    assert_error(chat(gw, "wave-sk-000000000000_" + "x" * 43), 401, "invalid_api_key")
    assert_error(chat(gw, BOOTSTRAP_KEY[:-1] + "c"), 401, "invalid_api_key")
    r = httpx.get(gw.url + "/v1/models", timeout=10)
    assert_error(r, 401)
    assert chat(gw, BOOTSTRAP_KEY).status_code == 200


def test_key_without_the_model_is_403(gw: RunningGateway, keys: KeyStore) -> None:
    key = keys.create("only-gemma", models=["gemma-*"]).key.reveal()
    error = assert_error(chat(gw, key), 403, "model_not_allowed", secrets=[*SECRETS, key])
    assert error["type"] == "permission_error" and error["param"] == "model"


def test_request_rate_429_with_retry_after_and_ratelimit_headers(gw: RunningGateway, keys: KeyStore) -> None:
    key = keys.create("rpm-2", rpm=2).key.reveal()
    ok = [chat(gw, key) for _ in range(2)]
    assert [r.status_code for r in ok] == [200, 200]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert ok[1].headers["x-ratelimit-remaining-requests"] == "0"
    refused = chat(gw, key)
    error = assert_error(refused, 429, "rate_limit_requests", secrets=[*SECRETS, key])
    assert error["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"


def test_token_rate_is_charged_from_real_usage(gw: RunningGateway, keys: KeyStore) -> None:
    key = keys.create("tpm-10", tpm=10).key.reveal()
    first = chat(gw, key)
    assert first.status_code == 200
    used = first.json()["usage"]["prompt_tokens"] + first.json()["usage"]["completion_tokens"]
    assert used > 10  # the chat template alone is longer than 10 tokens
    refused = chat(gw, key)
    assert_error(refused, 429, "rate_limit_tokens", secrets=[*SECRETS, key])
    # the debt (used - 10 tokens at 10/min) sets how long to wait
    assert int(refused.headers["retry-after"]) >= 6 * (used - 10)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"


def test_concurrency_limit_is_429_until_the_first_answer_is_done(
    gw: RunningGateway, keys: KeyStore, upstreams: list[str]
) -> None:
    key = keys.create("one-at-a-time", max_concurrent=1).key.reveal()
    answers: list[httpx.Response] = []
    # the slow upstream holds its first token for SLOW_TTFT_S seconds
    first = threading.Thread(target=lambda: answers.append(chat(gw, key, model=SLOW_MODEL)))
    first.start()
    try:
        wait_until_upstream_running(upstreams[1], 1)
        second = chat(gw, key, model=SLOW_MODEL)
        assert_error(second, 429, "rate_limit_concurrency", secrets=[*SECRETS, key])
        assert second.headers["retry-after"] == "1"
    finally:
        first.join(timeout=30)
    assert [a.status_code for a in answers] == [200]
    deadline = time.monotonic() + 10  # the slot comes back once the first answer is done
    while (r := chat(gw, key)).status_code != 200:
        assert r.status_code == 429 and time.monotonic() < deadline, r.text
        time.sleep(0.05)


def wait_until_upstream_running(url: str, n: int) -> None:
    deadline = time.monotonic() + 10
    while (
        f'vllm:num_requests_running{{model_name="{SLOW_MODEL}"}} {n}' not in httpx.get(url + "/metrics").text
    ):
        assert time.monotonic() < deadline, "the first request never reached the upstream"
        time.sleep(0.02)


def test_revoked_and_expired_keys_are_401(gw: RunningGateway, keys: KeyStore) -> None:
    created = wave_cli(gw.home, "keys", "create", "to-revoke", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)["key"]
    assert chat(gw, key).status_code == 200
    assert wave_cli(gw.home, "keys", "revoke", "to-revoke").returncode == 0
    assert_error(chat(gw, key), 401, "api_key_revoked", secrets=[*SECRETS, key])

    short = keys.create("short-lived", expires_at=time.time() + 2).key.reveal()
    assert chat(gw, short).status_code == 200
    deadline = time.monotonic() + 10
    while (r := chat(gw, short)).status_code == 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert_error(r, 401, "api_key_expired", secrets=[*SECRETS, short])


def test_oversized_body_is_413_and_malformed_json_is_400(gw: RunningGateway) -> None:
    headers = {"authorization": f"Bearer {BOOTSTRAP_KEY}", "content-type": "application/json"}
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]})
    assert_error(httpx.post(gw.url + CHAT, content=big, headers=headers, timeout=30), 413)

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must hold while reading
        for _ in range(20):
            yield b"x" * 8192

    assert_error(httpx.post(gw.url + CHAT, content=chunks(), headers=headers, timeout=30), 413)
    bad = httpx.post(gw.url + CHAT, content=b'{"model": "x", "messages": [', headers=headers, timeout=30)
    assert_error(bad, 400, "invalid_json")


def test_admin_api_through_the_gateway(gw: RunningGateway, keys: KeyStore) -> None:
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(
        gw.url + "/admin/keys",
        json={"name": "via-admin", "models": [MODEL], "rpm": 100},
        headers=admin,
        timeout=10,
    )
    assert r.status_code == 201, r.text
    key = r.json()["key"]
    assert chat(gw, key).status_code == 200
    listed = httpx.get(gw.url + "/admin/keys", headers=admin, timeout=10).json()["data"]
    assert "via-admin" in [k["name"] for k in listed] and all("key" not in k for k in listed)
    # an API key never opens the admin API; the admin key never opens a model endpoint
    assert_error(
        httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {key}"}, timeout=10), 401
    )
    assert_error(
        httpx.get(gw.url + "/admin/keys", headers={"authorization": f"Bearer {BOOTSTRAP_KEY}"}, timeout=10),
        401,
    )
    assert_error(chat(gw, ADMIN_KEY), 401)
    assert httpx.delete(gw.url + "/admin/keys/via-admin", headers=admin, timeout=10).status_code == 200
    assert_error(chat(gw, key), 401, "api_key_revoked", secrets=[*SECRETS, key])


def test_audit_log_records_requests_and_catches_tampering(gw: RunningGateway, keys: KeyStore) -> None:
    key = keys.create("audited", models=[MODEL]).key.reveal()
    assert chat(gw, key).status_code == 200
    assert chat(gw, key, model="not-allowed-model").status_code == 403
    db = gw.home / "audit.db"
    deadline = time.monotonic() + 10
    while True:  # the writer thread appends shortly after each answer
        tail = wave_cli(gw.home, "audit", "tail", "-n", "200", "--json")
        rows = (
            [r for r in json.loads(tail.stdout) if r["principal"] == "audited"]
            if tail.returncode == 0
            else []
        )
        if len(rows) == 2:
            break
        assert time.monotonic() < deadline, tail.stdout + tail.stderr
        time.sleep(0.05)
    ok, refused = rows
    assert ok["status"] == 200 and ok["model"] == MODEL and ok["backend"] and ok["tokens_in"] > 0
    assert refused["status"] == 403 and refused["model"] == "not-allowed-model"
    assert all(r["prompt"] is None for r in rows)
    statuses = {r["status"] for r in json.loads(tail.stdout)}
    assert {200, 401, 403}.issubset(statuses)
    assert wave_cli(gw.home, "audit", "verify").returncode == 0

    # tamper with a copy (the running gateway keeps appending to the original)
    copy = gw.home / "audit-copy.db"
    src = sqlite3.connect(db)
    src.backup(dst := sqlite3.connect(copy))
    src.close()
    dst.execute("UPDATE audit SET tokens_out = tokens_out + 100 WHERE id = ?", (ok["id"],))
    dst.commit()
    edited = wave_cli(gw.home, "audit", "verify", "--db", str(copy), "--json")
    assert edited.returncode == 1 and json.loads(edited.stdout)["broken_row"] == ok["id"]
    dst.execute("UPDATE audit SET tokens_out = tokens_out - 100 WHERE id = ?", (ok["id"],))
    dst.execute("DELETE FROM audit WHERE id = ?", (refused["id"] - 1,))
    dst.commit()
    deleted = wave_cli(gw.home, "audit", "verify", "--db", str(copy))
    assert deleted.returncode == 1 and f"broken at row {refused['id'] - 1}" in deleted.stderr


def test_public_bind_without_auth_is_refused(tmp_path: Path) -> None:
    r = wave_cli(
        tmp_path, "serve", "--upstream", "http://127.0.0.1:9", "--host", "0.0.0.0", "--no-auth", timeout=30
    )
    assert r.returncode == 2 and "refusing to listen on 0.0.0.0 with authentication disabled" in r.stderr
