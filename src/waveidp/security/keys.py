"""API keys: created once, stored only as a salted HMAC-SHA256 digest in `WAVE_HOME/keys.db`.

A key reads `wave-sk-<id>_<secret>`: the 12-hex-digit `id` is public (it names the key in lists
and logs) and selects one row; the 256-bit random `secret` is never stored. The row holds a
random per-key salt and HMAC-SHA256(salt, key), compared with `hmac.compare_digest`.

Why not scrypt/argon2: those slow hashes protect low-entropy passwords against guessing. A
256-bit random key cannot be guessed whatever the hash costs, while a slow hash would add
milliseconds to every request. The salt still makes each stored digest unique, so a copied
database reveals nothing that can be checked against another installation or a precomputed table.

The gateway keeps the rows in memory and reloads them when another process (the `wave keys` CLI,
the admin API of another replica) changed the database, detected by SQLite's `data_version`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _random
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from waveidp.errors import InputError, NotFoundError
from waveidp.security.limits import Limits
from waveidp.security.principal import Principal
from waveidp.security.refusals import unauthorized
from waveidp.security.secrets import Secret

PREFIX = "wave-sk-"
_ID_HEX = 12
_KEY_RE = re.compile(r"^wave-sk-([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_VERIFIED_MAX = 10_000  # distinct keys remembered as verified (bounded against key spraying)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  salt BLOB NOT NULL,
  digest BLOB NOT NULL,
  models TEXT NOT NULL,
  rpm INTEGER, tpm INTEGER, max_concurrent INTEGER,
  expires_at REAL,
  created_at REAL NOT NULL,
  rotated_at REAL,
  revoked_at REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) WHERE revoked_at IS NULL;
"""


@dataclass(frozen=True)
class ApiKey:
    """A stored key, without its secret."""

    id: str
    name: str
    models: tuple[str, ...]
    limits: Limits
    expires_at: float | None
    created_at: float
    rotated_at: float | None
    revoked_at: float | None

    def status(self, now: float | None = None) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            return "expired"
        return "active"

    def principal(self) -> Principal:
        return Principal(
            kind="key", name=self.name, bucket=f"key:{self.id}", models=self.models, limits=self.limits
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "models": list(self.models),
            "status": self.status(),
            "rpm": self.limits.rpm,
            "tpm": self.limits.tpm,
            "max_concurrent": self.limits.max_concurrent,
            "expires_at": _iso(self.expires_at),
            "created_at": _iso(self.created_at),
            "rotated_at": _iso(self.rotated_at),
            "revoked_at": _iso(self.revoked_at),
        }


@dataclass(frozen=True)
class IssuedKey:
    """A key just created or rotated: the only moment its plaintext exists."""

    record: ApiKey
    key: Secret


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def parse_expiry(text: str, now: float | None = None) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` from now, or an ISO 8601 date/time; returns epoch seconds."""
    now = time.time() if now is None else now
    m = _DURATION_RE.match(text.strip())
    if m:
        seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
        if seconds <= 0:
            raise InputError(f"expiry '{text}' is not in the future", fix="use e.g. 30d, 12h or 2027-01-31")
        return now + seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"cannot read expiry '{text}'", fix="use a duration like 30d / 12h or an ISO date"
        ) from None
    ts = when.astimezone().timestamp() if when.tzinfo is None else when.timestamp()
    if ts <= now:
        raise InputError(f"expiry '{text}' is in the past", fix="give a future date or a duration like 30d")
    return ts


def _digest(salt: bytes, key: str) -> bytes:
    return hmac.new(salt, key.encode(), hashlib.sha256).digest()


def _positive(name: str, value: int | None) -> int | None:
    if value is not None and value <= 0:
        raise InputError(
            f"{name} must be a positive whole number, got {value}", fix=f"omit --{name} for no limit"
        )
    return value


class KeyStore:
    """The SQLite key database; thread-safe; cheap `authenticate` from an in-memory copy."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            from waveidp.paths import wave_home

            path = wave_home() / "keys.db"
        from waveidp.paths import private_file

        self.path = path
        self._lock = threading.Lock()
        # 0600 before SQLite opens it: its -wal and -shm files are created with the database's mode
        self._db = sqlite3.connect(
            private_file(path), check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._cache: dict[str, tuple[ApiKey, bytes, bytes]] = {}
        # presented key -> its record, once its HMAC matched; emptied whenever the table changes
        # (data_version is still read per request, so a revocation is seen by the next request)
        self._verified: dict[str, ApiKey] = {}
        self._version = -1

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- reading -------------------------------------------------------------------------------

    @staticmethod
    def _row(r: sqlite3.Row | tuple[Any, ...]) -> ApiKey:
        return ApiKey(
            id=r[0],
            name=r[1],
            models=tuple(json.loads(r[4])),
            limits=Limits(r[5], r[6], r[7]),
            expires_at=r[8],
            created_at=r[9],
            rotated_at=r[10],
            revoked_at=r[11],
        )

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)
            self._version = -1  # data_version only moves for other connections' commits

    def _refresh(self) -> None:
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        rows = self._db.execute("SELECT * FROM api_keys").fetchall()
        self._cache = {r[0]: (self._row(r), r[2], r[3]) for r in rows}
        self._verified = {}
        self._version = version

    def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        with self._lock:
            self._refresh()
            keys = [entry[0] for entry in self._cache.values()]
        keys = [k for k in keys if include_revoked or k.revoked_at is None]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    def get(self, name_or_id: str) -> ApiKey:
        """The active key with this name or id (or a revoked one, by id)."""
        keys = self.list(include_revoked=True)
        for k in keys:
            if k.id == name_or_id or (k.name == name_or_id and k.revoked_at is None):
                return k
        raise NotFoundError("key", name_or_id, [k.name for k in keys if k.revoked_at is None])

    def authenticate(self, presented: str, now: float | None = None) -> ApiKey:
        """The key's record, or a 401 `ApiError` that never echoes what was presented."""
        m = _KEY_RE.match(presented)
        if m is None:
            raise unauthorized("invalid API key")
        with self._lock:
            self._refresh()
            verified = self._verified
            record = verified.get(presented)
            entry = self._cache.get(m.group(1)) if record is None else None
        if record is None:
            # Compare against a dummy digest for unknown ids so both paths cost the same.
            record, salt, digest = entry if entry else (None, b"\0" * 16, b"\0" * 32)
            if not hmac.compare_digest(_digest(salt, presented), digest) or record is None:
                raise unauthorized("invalid API key")
            if len(verified) < _VERIFIED_MAX:
                verified[presented] = record
        status = record.status(now)
        if status == "revoked":
            raise unauthorized(f"API key '{record.name}' has been revoked", code="api_key_revoked")
        if status == "expired":
            raise unauthorized(f"API key '{record.name}' has expired", code="api_key_expired")
        return record

    # --- writing -------------------------------------------------------------------------------

    def create(
        self,
        name: str,
        *,
        models: Sequence[str] = ("*",),
        expires_at: float | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        max_concurrent: int | None = None,
    ) -> IssuedKey:
        if not _NAME_RE.match(name):
            raise InputError(
                f"key name '{name}' is not allowed",
                fix="use 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit",
            )
        patterns = tuple(p.strip() for p in models if p.strip())
        if not patterns:
            raise InputError(
                "a key needs at least one model pattern", fix="e.g. --model '*' or --model 'llama-*'"
            )
        for value, label in ((rpm, "rpm"), (tpm, "tpm"), (max_concurrent, "max-concurrent")):
            _positive(label, value)
        if expires_at is not None and expires_at <= time.time():
            raise InputError("expiry is in the past", fix="give a future date or a duration like 30d")
        key_id = _random.token_hex(_ID_HEX // 2)
        plain, salt = self._new_secret(key_id)
        now = time.time()
        row = (key_id, name, salt, _digest(salt, plain), json.dumps(list(patterns)), rpm, tpm, max_concurrent)
        try:
            self._write(
                "INSERT INTO api_keys VALUES (?,?,?,?,?,?,?,?,?,?,NULL,NULL)",
                (*row, expires_at, now),
            )
        except sqlite3.IntegrityError:
            raise InputError(
                f"an active key named '{name}' already exists",
                fix=f"choose another name, or `wave keys rotate {name}`",
            ) from None
        return IssuedKey(self.get(key_id), Secret(plain, name=f"API key {name}"))

    @staticmethod
    def _new_secret(key_id: str) -> tuple[str, bytes]:
        return f"{PREFIX}{key_id}_{_random.token_urlsafe(32)}", _random.token_bytes(16)

    def revoke(self, name_or_id: str) -> ApiKey:
        key = self.get(name_or_id)
        if key.revoked_at is None:
            self._write("UPDATE api_keys SET revoked_at=? WHERE id=?", (time.time(), key.id))
        return self.get(key.id)

    def rotate(self, name_or_id: str) -> IssuedKey:
        """A new secret for the same key (id, name, models, limits); the old secret stops working now."""
        key = self.get(name_or_id)
        if key.revoked_at is not None:
            raise InputError(f"key '{key.name}' ({key.id}) is revoked", fix="create a new key instead")
        plain, salt = self._new_secret(key.id)
        self._write(
            "UPDATE api_keys SET salt=?, digest=?, rotated_at=? WHERE id=?",
            (salt, _digest(salt, plain), time.time(), key.id),
        )
        return IssuedKey(self.get(key.id), Secret(plain, name=f"API key {key.name}"))
