from __future__ import annotations

from pathlib import Path

import pytest

from support import self_signed_cert
from waveidp.errors import ApiError, ConfigError
from waveidp.security.transport import InputLimits, check_bind, is_loopback, tls_settings


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


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def _containers(value: object) -> int:
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
    return 0 if children is None else 1 + sum(map(_containers, children))


@pytest.mark.parametrize("split_quotes", [8192, 0])  # strings cut out by bytes.split, or by numpy
def test_json_shape_is_read_from_the_bytes_as_a_parser_would(
    split_quotes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brackets inside strings, escaped quotes and backslash runs do not count; random documents
    agree with a walk of the parsed value, however they are serialised."""
    import json
    import random

    from waveidp.security import transport
    from waveidp.security.transport import check_json_shape

    monkeypatch.setattr(transport, "_SPLIT_QUOTES", split_quotes)

    limits = InputLimits(max_json_depth=6, max_json_containers=30)
    rng = random.Random(19)

    def text() -> str:
        return "".join(rng.choice('ab"\\[]{}\n\u00e9') for _ in range(rng.randint(0, 6)))

    def value(depth: int) -> object:
        r = rng.random()
        if depth > 9 or r < 0.3:
            return text()
        if r < 0.65:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {text(): value(depth + 1) for _ in range(rng.randint(0, 3))}

    for _ in range(600):
        doc = {"model": value(0)}
        want = "json_too_complex" if _containers(doc) > 30 else "json_too_deep" if _depth(doc) > 6 else None
        for raw in (json.dumps(doc), json.dumps(doc, indent=1, ensure_ascii=False)):
            try:
                check_json_shape(raw.encode(), limits)
                got = None
            except ApiError as err:
                assert err.status == 400
                got = err.code
            assert got == want, raw
    check_json_shape(b'{"x": ' + b"[" * 40 + b"\\", limits)  # malformed: left to the parser
    deep = b'{"s": "' + b"[" * 40 + b'\\"", "x": [[[[["a"]]]]]}'
    check_json_shape(deep, limits)  # 6 levels; the 40 brackets are in a string
    assert refusal(check_json_shape, deep.replace(b'["a"]', b'[["a"]]'), limits).code == "json_too_deep"
