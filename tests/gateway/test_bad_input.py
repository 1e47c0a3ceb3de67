"""Bad requests get the right status and an OpenAI-style error body a person can act on; the
gateway keeps serving afterwards."""

from __future__ import annotations

import httpx
import pytest
from gateway_support import auth

from waveidp.loopback import wait_http

CHAT = {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def error_of(r: httpx.Response) -> dict:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


@pytest.fixture(scope="module")
def gw_url(module_processes) -> str:
    """One gateway for the module: every test here only sends requests it refuses or answers."""
    fake_upstream, gateway = module_processes
    up = fake_upstream("alpha", model=["m1", "m2"])
    return gateway([up.url], "--max-body-bytes", "2048").url


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "model", "invalid_type"),
        ({"model": 7, "messages": []}, "model", "invalid_type"),
        ({**CHAT, "stream": "yes"}, "stream", "invalid_type"),
        ({**CHAT, "max_tokens": -3}, "max_tokens", "invalid_type"),
        ({"model": "m1", "messages": "hi"}, "messages", "invalid_type"),
        ({"model": "m1", "messages": ["hi"]}, "messages[0]", "invalid_type"),
    ],
)
def test_wrong_types_are_400_naming_the_field(gw_url: str, body: dict, param: str, code: str) -> None:
    r = httpx.post(gw_url + "/v1/chat/completions", json=body, headers=auth())
    assert r.status_code == 400
    err = error_of(r)
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error")
    assert param.split("[")[0] in err["message"]


def test_invalid_json_and_non_object(gw_url: str) -> None:
    r = httpx.post(gw_url + "/v1/chat/completions", content=b'{"model": "m1", ', headers=auth())
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    r = httpx.post(gw_url + "/v1/chat/completions", content=b"[1, 2]", headers=auth())
    assert r.status_code == 400 and "JSON object" in error_of(r)["message"]


def test_unknown_model_is_404_listing_the_available_ones(gw_url: str) -> None:
    r = httpx.post(gw_url + "/v1/chat/completions", json={**CHAT, "model": "gpt-9"}, headers=auth())
    assert r.status_code == 404
    err = error_of(r)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert "gpt-9" in err["message"] and "m1, m2" in err["message"]


def test_body_over_the_limit_is_413(gw_url: str) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
    r = httpx.post(gw_url + "/v1/chat/completions", json=big, headers=auth())
    assert r.status_code == 413
    err = error_of(r)
    assert "2048" in err["message"] and err["message"].endswith("(--max-body-bytes)")

    # chunked upload without content-length is counted as it arrives
    def gen():
        yield b'{"model": "m1", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    r = httpx.post(gw_url + "/v1/chat/completions", content=gen(), headers=auth())
    assert r.status_code == 413


def test_missing_key_is_401(gw_url: str) -> None:
    r = httpx.post(gw_url + "/v1/chat/completions", json=CHAT)
    assert r.status_code == 401 and error_of(r)["code"] == "missing_api_key"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.get(gw_url + "/v1/models").status_code == 401


def test_unknown_route_is_404_with_error_body(gw_url: str) -> None:
    r = httpx.post(gw_url + "/v1/chat/completion", json=CHAT, headers=auth())
    assert r.status_code == 404 and "/v1/chat/completions" in error_of(r)["message"]


def test_gateway_survives_bad_input(gw_url: str) -> None:
    for payload in (b"\xff\xfe", b"null", b'{"model": null}', b"{" * 1000):
        assert httpx.post(gw_url + "/v1/chat/completions", content=payload, headers=auth()).status_code == 400
    r = httpx.post(gw_url + "/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].startswith("alpha")


def test_no_healthy_backend_is_503_saying_which_is_down_and_why(fake_upstream, gateway) -> None:
    up = fake_upstream("alpha", model=["m1"])
    gw = gateway([up.url])
    up.proc.kill()
    up.proc.wait()
    wait_http(gw.url + "/ready", ok=(503,), timeout=10)
    r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=auth())
    assert r.status_code == 503
    err = error_of(r)
    assert err["code"] == "no_healthy_backend"
    assert "upstream0" in err["message"] and up.url in err["message"] and "cannot connect" in err["message"]
    assert r.headers["retry-after"] == "1"


def test_oversized_headers_are_431_and_deep_json_is_400(gw_url: str) -> None:
    url = gw_url + "/v1/chat/completions"
    many = {**auth(), **{f"x-pad-{i}": "v" for i in range(120)}}  # over the 100-header limit
    big = {**auth(), "x-pad": "v" * 40_000}  # over the 32 KiB limit
    for headers in (many, big):
        r = httpx.post(url, json=CHAT, headers=headers)
        assert r.status_code == 431, r.text
        assert error_of(r)["code"] == "request_header_fields_too_large"
    deep: object = "hi"
    for _ in range(40):  # 40 levels, over the limit of 32, yet well under --max-body-bytes
        deep = [deep]
    r = httpx.post(url, json={**CHAT, "metadata": deep}, headers=auth())
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == "json_too_deep" and "32" in error["message"]
    shallow = {**CHAT, "metadata": [[[["ok"]]]] * 10}  # many brackets, little depth: passes through
    assert httpx.post(url, json=shallow, headers=auth()).status_code == 200
    assert httpx.post(url, json=CHAT, headers=auth()).status_code == 200
