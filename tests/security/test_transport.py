from __future__ import annotations

from pathlib import Path

import pytest

from support import self_signed_cert
from waveidp.errors import ApiError, ConfigError
from waveidp.security.transport import InputLimits, check_bind, check_headers, is_loopback, tls_settings

LIMITS = InputLimits(max_body_bytes=1000, max_headers=5, max_header_bytes=200, max_json_depth=4)


def refusal(fn: object, *args: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


def test_loopback_rule() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.10", "example.com", ""))
    check_bind("127.0.0.1", auth_enabled=False)
    check_bind("0.0.0.0", auth_enabled=True)
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0 with authentication disabled"):
        check_bind("0.0.0.0", auth_enabled=False)


def test_header_limits() -> None:
    check_headers([(b"a", b"b")] * 5, LIMITS)
    assert refusal(check_headers, [(b"a", b"b")] * 6, LIMITS).status == 431
    assert refusal(check_headers, [(b"cookie", b"x" * 300)], LIMITS).status == 431


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
