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


def _shape(raw: bytes, limits: InputLimits, cuts: list[int]) -> str | None:
    """Feed `raw` to a JsonShape in the chunks that `cuts` (sorted offsets) make; the refusal's code."""
    from waveidp.security.transport import JsonShape

    shape = JsonShape(limits)
    try:
        for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
            shape.feed(raw[start:end])
    except ApiError as err:
        assert err.status == 400
        return err.code
    return None


@pytest.mark.parametrize("split_quotes", [8192, 0])  # strings cut out by bytes.split, or by numpy
def test_json_shape_is_read_from_the_bytes_as_a_parser_would(
    split_quotes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brackets inside strings, escaped quotes and backslash runs do not count, wherever the body's
    chunks break it (in an escape, a backslash run, a string); random documents agree with a walk
    of the parsed value, however they are serialised and cut."""
    import json
    import random

    from waveidp.security import transport

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
        over = {"json_too_complex"} if _containers(doc) > 30 else set()
        over |= {"json_too_deep"} if _depth(doc) > 6 else set()
        for raw in (json.dumps(doc).encode(), json.dumps(doc, indent=1, ensure_ascii=False).encode()):
            cuts = sorted(rng.sample(range(1, len(raw)), min(len(raw) - 1, rng.choice([0, 1, 3, 12]))))
            got = _shape(raw, limits, cuts)
            # the first limit the bytes cross is named: either, where the document crosses both
            assert (got in over) if over else got is None, (raw, cuts)
    # an unbalanced body is left to the parser to name, unless it goes past a limit on the way
    assert _shape(b'{"x": ' + b"]" * 40 + b"[" * 40, limits, [8]) is None
    assert _shape(b'{"x": ' + b"[" * 10 + b"\\", limits, []) == "json_too_deep"
    deep = b'{"s": "' + b"[" * 40 + b'\\\\\\"\\\\", "x": [[[[["a"]]]]]}'
    for cut in range(1, len(deep)):  # 6 levels; the 40 brackets are in a string, at every cut
        assert _shape(deep, limits, [cut]) is None, cut
        assert _shape(deep.replace(b'["a"]', b'[["a"]]'), limits, [cut]) == "json_too_deep", cut


def test_a_refused_body_is_refused_at_its_first_chunk_over_the_limit() -> None:
    from waveidp.security.transport import JsonShape

    shape = JsonShape(InputLimits(max_json_containers=1000))
    shape.feed(b'{"model": "m", "x": [' + b"[1]," * 900)
    with pytest.raises(ApiError) as refused:
        shape.feed(b"[1]," * 200)  # the rest of the body never needs to be read
    assert refused.value.code == "json_too_complex" and "gateway.max_json_containers" in str(refused.value)
