"""Two gateway replicas sharing limits through a real redis-server; the gateway over TLS; OIDC tokens."""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from support import running, self_signed_cert
from waveidp.loopback import free_port, wait_http
from waveidp.security.keys import KeyStore

from .gateway_fixtures import BOOTSTRAP_KEY, MODEL, start_gateway, start_llama, wave_cli
from .test_jwt_auth import AUDIENCE, ISSUER, JWK_A, KEY_A, mint

pytestmark = [pytest.mark.engine, pytest.mark.servers]
CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        yield start_llama(stack, tmp_path_factory.mktemp("llama"))


def body() -> dict[str, object]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def test_two_replicas_share_one_rate_limit_through_redis(llama: str, redis_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"  # one key database, as replicas on one host (or a shared volume) would have
    home.mkdir()
    store = KeyStore(home / "keys.db")
    key = store.create("shared", rpm=5).key.reveal()
    headers = {"authorization": f"Bearer {key}"}
    with contextlib.ExitStack() as stack:
        a = start_gateway(stack, home, [llama], "--redis", redis_url)
        b = start_gateway(stack, home, [llama], "--redis", redis_url)
        statuses = [
            httpx.post(g.url + CHAT, json=body(), headers=headers, timeout=30).status_code for g in [a, b] * 4
        ]
    assert statuses.count(200) == 5 and statuses.count(429) == 3
    assert statuses[:5] == [200] * 5  # alternating replicas: each saw the other's requests


def test_bad_redis_url_is_a_clear_startup_error(tmp_path: Path) -> None:
    r = wave_cli(
        tmp_path, "serve", "--upstream", "http://127.0.0.1:9", "--redis", "redis://:hunter2@127.0.0.1:9/0"
    )
    assert r.returncode == 2 and "cannot reach Redis" in r.stderr and "hunter2" not in r.stderr


def test_tls(llama: str, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    with contextlib.ExitStack() as stack:
        g = start_gateway(
            stack,
            tmp_path / "home",
            [llama],
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
            scheme="https",
            env={"SSL_CERT_FILE": str(cert)},
        )
        r = httpx.post(
            g.url + CHAT,
            json=body(),
            headers={"authorization": f"Bearer {BOOTSTRAP_KEY}"},
            verify=ssl.create_default_context(cafile=str(cert)),
            timeout=30,
        )
        assert r.status_code == 200 and r.json()["choices"]
        with pytest.raises(httpx.HTTPError):
            httpx.get(g.url.replace("https://", "http://") + "/health", timeout=5)


def test_oidc_tokens_at_the_gateway(llama: str, tmp_path: Path) -> None:
    static = tmp_path / "idp"
    static.mkdir()
    (static / "jwks.json").write_text(json.dumps({"keys": [JWK_A]}))
    port = free_port()
    idp = f"http://127.0.0.1:{port}"
    with contextlib.ExitStack() as stack:
        proc = stack.enter_context(
            running(
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    str(static),
                ],
                log=tmp_path / "idp.log",
            )
        )
        wait_http(idp + "/jwks.json", proc=proc)
        g = start_gateway(
            stack,
            tmp_path / "home",
            [llama],
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-url",
            idp + "/jwks.json",
        )

        def call(token: str) -> httpx.Response:
            return httpx.post(
                g.url + CHAT, json=body(), headers={"authorization": f"Bearer {token}"}, timeout=30
            )

        assert call(mint(scope="openid model:smollm2-*")).status_code == 200
        assert call(mint(scope="openid model:gemma-*")).status_code == 403
        assert call(mint(aud="other")).status_code == 401
        expired = jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "u", "exp": int(time.time()) - 300},
            KEY_A,
            algorithm="RS256",
            headers={"kid": "a"},
        )
        r = call(expired)
        assert r.status_code == 401 and r.json()["error"]["code"] == "token_expired"
        assert expired not in r.text
