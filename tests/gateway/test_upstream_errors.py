"""Engines' error answers reach the client in OpenAI's error shape (`code` a string or null)."""

from __future__ import annotations

import orjson
import pytest

from waveidp.gateway.errors import upstream_error


@pytest.mark.parametrize(
    ("raw", "status", "want"),
    [
        # llama.cpp: integer code
        (
            b'{"error":{"code":400,"message":"input is empty","type":"invalid_request_error"}}',
            400,
            {"message": "input is empty", "type": "invalid_request_error", "param": None, "code": "400"},
        ),
        # vLLM: fields at the top level
        (
            b'{"object":"error","message":"bad max_tokens","type":"BadRequestError","param":"max_tokens",'
            b'"code":400}',
            400,
            {"message": "bad max_tokens", "type": "BadRequestError", "param": "max_tokens", "code": "400"},
        ),
        # Ollama: a plain string
        (
            b'{"error":"model not found"}',
            404,
            {"message": "model not found", "type": "not_found_error", "param": None, "code": None},
        ),
        # a proxy's HTML page
        (
            b"<html>Forbidden</html>",
            403,
            {
                "message": "the engine answered HTTP 403: <html>Forbidden</html>",
                "type": "permission_error",
                "param": None,
                "code": None,
            },
        ),
    ],
)
def test_upstream_error_bodies_are_normalised(raw: bytes, status: int, want: dict) -> None:
    assert orjson.loads(upstream_error(raw, status).json()) == {"error": want}


def test_an_engine_that_compresses_still_gives_the_client_readable_json(fake_upstream, gateway) -> None:
    """The gateway passes answers on byte for byte, so it must not ask the engine for a compression
    whose content-encoding it does not pass on."""
    import httpx
    from gateway_support import auth

    up = fake_upstream("gz", model=["m1"], gzip=True)
    asked = httpx.post(
        up.url + "/v1/chat/completions",
        json={"model": "m1", "messages": [{"role": "user", "content": "hi"}]},
        headers={"accept-encoding": "gzip"},
    )
    assert asked.headers.get("content-encoding") == "gzip"  # the upstream really compresses
    gw = gateway([up.url])
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers=auth(),
    )
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"]
