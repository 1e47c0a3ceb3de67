"""Transport and input hygiene: TLS settings, the loopback rule, request size/shape limits.

Small pure functions the gateway calls at its edges. A refusal is an `ApiError` with the OpenAI
error shape (request heads are bounded by the HTTP server, `gateway.http_protocol`: 431); the
gateway answers a body over
`max_body_bytes` with 413 (`body_too_large`), and JSON nested deeper than `max_json_depth` or with
more than `max_json_containers` arrays and objects with 400 (`json_too_deep`, `json_too_complex`:
`check_json_shape`, before the body is parsed).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from waveidp.errors import ApiError, ConfigError


@dataclass(frozen=True)
class InputLimits:
    max_body_bytes: int = 32 * 1024 * 1024  # gateway.max_body_bytes sets it
    max_json_depth: int = 32
    max_json_containers: int = 20_000  # gateway.max_json_containers sets it


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


# Every byte but a quote and the four brackets, deleted by `bytes.translate`.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{}')
_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")
# Up to this many strings are cut out with bytes.split; more, by quote parity in numpy.
_SPLIT_QUOTES = 8192


def _escaped(backslashes: Any) -> Any:
    """Positions of the bytes escaped by the backslashes at `backslashes` (sorted): in a run of
    them the first, third... begin an escape (`\\\\` is one)."""
    import numpy as np

    follows = np.diff(backslashes, prepend=-2) == 1
    if not follows.any():  # no `\\\\`: each one escapes the byte after it
        return backslashes + 1
    n = np.arange(backslashes.size)
    starts = np.maximum.accumulate(np.where(follows, 0, n))
    return backslashes[((n - starts) & 1) == 0] + 1


def _structure(raw: bytes) -> bytes:
    """The brackets of a JSON document outside its strings, in order."""
    import numpy as np

    b = np.frombuffer(raw, np.uint8)
    backslashes = np.flatnonzero(b == ord("\\"))
    if backslashes.size:  # blank what each escape escapes (`\\"` must not end a string)
        escaped = _escaped(backslashes)
        b = b.copy()
        b[escaped[escaped < b.size]] = 0
        raw = b.tobytes()
    kept = raw.translate(None, _NOT_STRUCTURE)  # quotes and brackets: each quote opens or closes
    if kept.count(b'"') <= _SPLIT_QUOTES:
        return b"".join(kept.split(b'"')[::2])
    k = np.frombuffer(kept, np.uint8)
    quote = k == ord('"')
    outside = (np.cumsum(quote, dtype=np.uint8) & 1) == 0  # parity is all a uint8 needs to keep
    return k[outside & ~quote].tobytes()


def check_json_shape(raw: bytes, limits: InputLimits) -> None:
    """400 for a JSON body with more than `max_json_containers` arrays and objects, or nested
    deeper than `max_json_depth`, found in the raw bytes before anything is parsed: parsing builds a
    Python object per container (1.2M of them cost ~1 s with orjson, and a walk as much again),
    while this is a few passes of C over the bytes. A body with fewer brackets than the depth limit,
    most requests, pays two counts. Malformed JSON is left to the parser to name."""
    if raw.count(b"[") + raw.count(b"{") <= limits.max_json_depth:
        return
    structure = _structure(raw)
    containers = structure.count(b"[") + structure.count(b"{")
    if containers * 2 != len(structure):
        return  # unbalanced: not JSON
    if containers > limits.max_json_containers:
        raise ApiError(
            400,
            f"JSON body holds {containers} arrays and objects, over the limit of "
            f"{limits.max_json_containers} (gateway.max_json_containers)",
            code="json_too_complex",
        )
    if containers <= limits.max_json_depth:
        return
    import numpy as np

    # +1 per opening, -1 per closing bracket; the running sum's peak is the depth
    steps = (np.frombuffer(structure.translate(_AS_BRACKETS), np.uint8) == ord("[")).astype(np.int32)
    if int(np.cumsum(steps * 2 - 1).max()) > limits.max_json_depth:
        raise ApiError(400, f"JSON nested deeper than {limits.max_json_depth} levels", code="json_too_deep")
