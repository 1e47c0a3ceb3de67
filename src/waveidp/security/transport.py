"""Transport and input hygiene: TLS settings, the loopback rule, request size/shape limits.

Small pure functions the gateway calls at its edges. A refusal is an `ApiError` with the OpenAI
error shape (request heads are bounded by the HTTP server, `gateway.http_protocol`: 431); the
gateway answers a body over
`max_body_bytes` with 413 (`body_too_large`), and JSON nested deeper than `max_json_depth` or with
more than `max_json_containers` arrays and objects with 400 (`json_too_deep`, `json_too_complex`:
`JsonShape`, while the body is read).
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

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
# Up to this many quotes in a chunk, its strings are cut out with bytes.split; more, by parity in numpy.
_SPLIT_QUOTES = 8192


def _blank_escaped(chunk: bytes) -> bytes:
    """`chunk` with each byte a backslash escapes set to 0: in a run of backslashes the first,
    third... begin an escape (`\\\\` is one escaped backslash)."""
    import numpy as np

    b = np.frombuffer(chunk, np.uint8)
    backslashes = np.flatnonzero(b == ord("\\"))
    follows = np.diff(backslashes, prepend=-2) == 1
    if follows.any():  # runs: only every other backslash of one begins an escape
        n = np.arange(backslashes.size)
        starts = np.maximum.accumulate(np.where(follows, 0, n))
        backslashes = backslashes[((n - starts) & 1) == 0]
    escaped = backslashes + 1
    b = b.copy()
    b[escaped[escaped < b.size]] = 0
    return b.tobytes()


def _json_too_complex(containers: int, limit: int) -> ApiError:
    return ApiError(
        400,
        f"JSON body holds more than {limit} arrays and objects ({containers} in its first bytes) "
        "(gateway.max_json_containers)",
        code="json_too_complex",
    )


class JsonShape:
    """The arrays and objects of a JSON body, counted and their depth followed as its bytes arrive
    (`feed` each chunk): 400 at the first chunk that takes the body past `max_json_containers`
    (`json_too_complex`) or `max_json_depth` (`json_too_deep`), so that a refused body is neither
    read to its end nor parsed. Parsing builds a Python object per container (1.2M of them cost ~1 s
    with orjson); this is a few passes of C over each chunk, and nothing at all while the body has
    seen no more brackets than the depth limit (most requests). Malformed JSON (a closing bracket
    too many) is left to the parser to name."""

    __slots__ = ("brackets", "containers", "depth", "escaping", "held", "in_string", "limits", "off")

    def __init__(self, limits: InputLimits) -> None:
        self.limits = limits
        self.brackets = 0  # opening ones seen, strings and all, while `held`
        self.held: list[bytes] | None = []  # chunks not walked yet: too few brackets to matter
        self.in_string = False
        self.escaping = False  # the last chunk ended in a backslash that escapes the next byte
        self.depth = 0
        self.containers = 0
        self.off = False  # not JSON: the parser will say so

    def feed(self, chunk: bytes) -> None:
        held = self.held
        if not chunk:
            return
        if held is not None:
            self.brackets += chunk.count(b"[") + chunk.count(b"{")
            held.append(chunk)
            if self.brackets <= self.limits.max_json_depth:
                return
            self.held = None
            for c in held:
                self._walk(c)
        else:
            self._walk(chunk)

    def _walk(self, chunk: bytes) -> None:
        if self.off:
            return
        if self.escaping:  # the byte a backslash at the end of the last chunk escapes
            chunk = chunk[1:]
        # a backslash run escapes the byte after it when it is odd (`\\` is one escaped backslash)
        self.escaping = chunk.endswith(b"\\") and (len(chunk) - len(chunk.rstrip(b"\\"))) & 1 == 1
        if self.in_string and b'"' not in chunk:
            return  # all of it in one string (a data URL's base64): nothing to count
        if b'\\"' in chunk:  # escaped quotes, the one escape that matters here
            chunk = _blank_escaped(chunk)
        kept = chunk.translate(None, _NOT_STRUCTURE)  # quotes and brackets: each quote opens or closes
        if not kept:
            return
        quotes = kept.count(b'"')
        if not quotes:
            structure = b"" if self.in_string else kept
        elif quotes <= _SPLIT_QUOTES:
            structure = b"".join(kept.split(b'"')[1 if self.in_string else 0 :: 2])
        else:
            import numpy as np

            k = np.frombuffer(kept, np.uint8)
            quote = k == ord('"')
            inside = (np.cumsum(quote, dtype=np.uint8) & 1).astype(bool) ^ self.in_string
            structure = k[~inside & ~quote].tobytes()
        self.in_string ^= bool(quotes & 1)
        if structure:
            self._count(structure)

    def _count(self, structure: bytes) -> None:
        limits = self.limits
        opening = structure.count(b"[") + structure.count(b"{")
        self.containers += opening
        if self.containers > limits.max_json_containers:
            raise _json_too_complex(self.containers, limits.max_json_containers)
        if self.depth + opening > limits.max_json_depth:
            import numpy as np

            # +1 per opening, -1 per closing bracket; the running sum's peak is the deepest point
            steps = (np.frombuffer(structure.translate(_AS_BRACKETS), np.uint8) == ord("[")).astype(np.int32)
            if self.depth + int(np.cumsum(steps * 2 - 1).max()) > limits.max_json_depth:
                raise ApiError(
                    400, f"JSON nested deeper than {limits.max_json_depth} levels", code="json_too_deep"
                )
        self.depth += 2 * opening - len(structure)
        if self.depth < 0:
            self.off = True
