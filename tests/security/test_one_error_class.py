"""One error class and one authenticator serve the gateway and security (no second copy to drift)."""

from __future__ import annotations

import importlib.util

import orjson

from waveidp.errors import ApiError
from waveidp.security.refusals import unauthorized
from waveidp.security.transport import InputLimits, JsonShape


def test_security_refusals_answer_through_the_gateway_unchanged() -> None:
    refusal = unauthorized("invalid API key")
    assert isinstance(refusal, ApiError)
    response = refusal.response()
    assert response.status_code == 401 and response.headers["www-authenticate"] == 'Bearer realm="wave"'
    assert orjson.loads(response.body)["error"] == {
        "message": "invalid API key",
        "type": "authentication_error",
        "param": None,
        "code": "invalid_api_key",
    }
    try:
        JsonShape(InputLimits()).feed(b'{"x": ' + b"[" * 40 + b"]" * 40 + b"}")
    except ApiError as err:  # a transport refusal is the gateway's error type
        assert err.status == 400 and err.type == "invalid_request_error"
    else:
        raise AssertionError("JSON 41 levels deep was accepted")


def test_the_gateway_has_no_authenticator_of_its_own() -> None:
    assert importlib.util.find_spec("waveidp.gateway.auth") is None
