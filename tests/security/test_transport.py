from __future__ import annotations

from pathlib import Path

import pytest

from support import self_signed_cert
from waveidp.errors import ConfigError
from waveidp.security.refusals import Refusal
from waveidp.security.transport import (
    InputLimits,
    check_bind,
    check_content_length,
    check_headers,
    is_loopback,
    parse_json_object,
    tls_settings,
)

LIMITS = InputLimits(max_body_bytes=1000, max_headers=5, max_header_bytes=200, max_json_depth=4)


def refusal(fn: object, *args: object) -> Refusal:
    with pytest.raises(Refusal) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_loopback_rule() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""))
    check_bind("127.0.0.1", auth_enabled=False)
    check_bind("0.0.0.0", auth_enabled=True)
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 with authentication disabled"):
        check_bind("0.0.0.0", auth_enabled=False)


def test_body_header_and_json_limits() -> None:
    check_content_length("1000", LIMITS)
    assert refusal(check_content_length, "1001", LIMITS).status == 413
    assert refusal(check_content_length, "ten", LIMITS).status == 400
    assert refusal(parse_json_object, b"x" * 1001, LIMITS).status == 413
    check_headers([(b"a", b"b")] * 5, LIMITS)
    assert refusal(check_headers, [(b"a", b"b")] * 6, LIMITS).status == 431
    assert refusal(check_headers, [(b"cookie", b"x" * 300)], LIMITS).status == 431

    assert parse_json_object(b'{"model": "m", "messages": [{"role": "user"}]}', LIMITS)["model"] == "m"
    bad = refusal(parse_json_object, b'{"model": "m",', LIMITS)
    assert bad.status == 400 and bad.code == "invalid_json" and "line 1" in bad.what
    assert bad.body()["error"]["type"] == "invalid_request_error"
    assert refusal(parse_json_object, b"[1, 2]", LIMITS).what.endswith("got list")
    assert refusal(parse_json_object, b"  ", LIMITS).status == 400
    assert parse_json_object(b'{"a": {"b": {"c": [1]}}}', LIMITS)
    deep = refusal(parse_json_object, b'{"a": {"b": {"c": [[1]]}}}', LIMITS)
    assert deep.code == "json_too_deep"
    huge = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert refusal(parse_json_object, huge, InputLimits(max_body_bytes=10**6)).status == 400


def test_tls_pair_is_checked(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    assert tls_settings(cert, key) == {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    assert tls_settings(None, None) == {}
    with pytest.raises(ConfigError, match="both --tls-cert and --tls-key"):
        tls_settings(cert, None)
    with pytest.raises(ConfigError, match="does not exist"):
        tls_settings(cert, tmp_path / "nope.pem")
    with pytest.raises(ConfigError, match="cannot load TLS certificate"):
        tls_settings(cert, cert)
