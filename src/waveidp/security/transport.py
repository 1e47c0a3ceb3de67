"""Transport and input hygiene: TLS settings, the loopback rule, request size/shape limits.

Small pure functions the gateway calls at its edges. A refusal is an `ApiError` with the OpenAI
error shape: 431 for too many or too large headers here; the gateway answers a body over
`max_body_bytes` with 413 (`body_too_large`) and JSON nested deeper than `max_json_depth` with 400
(`json_too_deep`, found by `json_depth_exceeds`).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waveidp.errors import ApiError, ConfigError


@dataclass(frozen=True)
class InputLimits:
    max_body_bytes: int = 32 * 1024 * 1024  # gateway.max_body_bytes sets it
    max_headers: int = 100
    max_header_bytes: int = 32 * 1024
    max_json_depth: int = 32


def is_loopback(host: str) -> bool:
    """True for `localhost`, 127.0.0.0/8 and ::1; False for wildcards, LAN addresses and other names."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, *, auth_enabled: bool) -> None:
    """Refuse to serve a non-loopback address without authentication."""
    if not auth_enabled and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} with authentication disabled: anyone on the network could use it",
            fix="create a key with `wave keys create NAME`, configure OIDC, or bind 127.0.0.1",
        )


def tls_settings(cert: str | Path | None, key: str | Path | None) -> dict[str, str]:
    """uvicorn's `ssl_certfile`/`ssl_keyfile`, after checking the pair loads; `{}` without TLS."""
    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key", fix="give both files or neither")
    cert_p, key_p = Path(cert).expanduser(), Path(key).expanduser()
    for p, what in ((cert_p, "--tls-cert"), (key_p, "--tls-key")):
        if not p.is_file():
            raise ConfigError(f"{what} file {p} does not exist")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert_p, key_p)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot load TLS certificate {cert_p} with key {key_p}: {exc.reason or exc}",
            fix="check that the key belongs to the certificate and both are PEM",
        ) from None
    return {"ssl_certfile": str(cert_p), "ssl_keyfile": str(key_p)}


def check_headers(headers: Iterable[tuple[bytes, bytes]], limits: InputLimits) -> None:
    """431 for more than `max_headers` headers or more than `max_header_bytes` of them in total."""
    count = size = 0
    for name, value in headers:
        count += 1
        size += len(name) + len(value)
    if count > limits.max_headers or size > limits.max_header_bytes:
        raise ApiError(
            431,
            f"request headers exceed the limit ({limits.max_headers} headers, "
            f"{limits.max_header_bytes} bytes)",
            code="request_header_fields_too_large",
        )


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (iterative: deep input cannot exhaust the stack)."""
    if not isinstance(value, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
