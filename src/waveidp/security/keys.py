"""API keys: created once, stored only as a salted HMAC-SHA256 digest in the key table
(`WAVE_HOME/keys.db`, or PostgreSQL for several replicas: `waveidp.security.state`).

A key reads `wave-sk-<id>_<secret>`: the 12-hex-digit `id` is public (it names the key in lists
and logs) and selects one row; the 256-bit random `secret` is never stored. The row holds a
random per-key salt and HMAC-SHA256(salt, key), compared with `hmac.compare_digest`.

Why not scrypt/argon2: those slow hashes protect low-entropy passwords against guessing. A
256-bit random key cannot be guessed whatever the hash costs, while a slow hash would add
milliseconds to every request. The salt still makes each stored digest unique, so a copied
database reveals nothing that can be checked against another installation or a precomputed table.

The gateway keeps the rows in memory and rereads them when another process (the `wave keys` CLI,
the admin API of another replica) changed the table: SQLite's `data_version`, read per request,
or PostgreSQL's LISTEN/NOTIFY. While PostgreSQL is down the keys already read go on working; a
key id never seen is a 503 (`key_store_unavailable`), and creating keys fails with a clear error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets as _random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from waveidp.errors import ApiError, InputError, NotFoundError
from waveidp.security.limits import Limits
from waveidp.security.principal import Principal
from waveidp.security.refusals import unauthorized
from waveidp.security.secrets import Secret
from waveidp.security.state import DuplicateName, KeyRow, KeyTable, StoreUnavailable, key_table

PREFIX = "wave-sk-"
_ID_HEX = 12
_KEY_RE = re.compile(r"^wave-sk-([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_VERIFIED_MAX = 10_000  # distinct keys remembered as verified (bounded against key spraying)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


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
    """API keys over a key table (SQLite or PostgreSQL, `waveidp.security.state`); thread-safe;
    `authenticate` answers from an in-memory copy that is reread when the table's version moves."""

    def __init__(self, table: Path | KeyTable | None = None) -> None:
        """`table`: a key table, or the path of an SQLite key database (default WAVE_HOME/keys.db)."""
        if table is None or isinstance(table, Path):
            table = key_table(None, table)
        self.table = table
        self.path = getattr(table, "path", None)
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[ApiKey, bytes, bytes]] = {}
        # presented key -> its record, once its HMAC matched; emptied whenever the table changes
        # (the version is still read per request, so a revocation is seen by the next request)
        self._verified: dict[str, ApiKey] = {}
        self._unknown: set[str] = set()  # ids looked up and not found since the last change
        self._version = -1

    async def aclose(self) -> None:
        """Close the table's event-loop resources (PostgreSQL's async pool) in the loop that used them."""
        await self.table.aclose()

    def close(self) -> None:
        with self._lock:
            self.table.close()

    # --- reading -------------------------------------------------------------------------------

    @staticmethod
    def _record(r: KeyRow) -> ApiKey:
        return ApiKey(
            id=r.id,
            name=r.name,
            models=tuple(json.loads(r.models)),
            limits=Limits(r.rpm, r.tpm, r.max_concurrent),
            expires_at=r.expires_at,
            created_at=r.created_at,
            rotated_at=r.rotated_at,
            revoked_at=r.revoked_at,
        )

    def _refresh(self) -> None:
        version = self.table.version()
        if version == self._version:
            return
        try:
            rows = self.table.rows()
        except StoreUnavailable:
            if self._version == -1:
                raise
            return  # keep what is known (cached verdicts go on); reread once it answers again
        self._cache = {r.id: (self._record(r), r.salt, r.digest) for r in rows}
        self._verified = {}
        self._unknown = set()
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
        key_id = self._key_id(presented)
        with self._lock:
            self._refresh()
            record = self._known(presented, key_id)
        return self._usable(record, now)

    async def authenticate_async(self, presented: str, now: float | None = None) -> ApiKey:
        """`authenticate` for the gateway: a well-formed key whose id this process has not seen is
        looked up in the table (a key another replica created a moment ago) before it is refused;
        a table that cannot answer then is a 503, not a 401."""
        key_id = self._key_id(presented)
        with self._lock:
            self._refresh()
            missing = key_id not in self._cache and key_id not in self._unknown
        if missing and self.table.shared:
            try:
                row = await self.table.fetch(key_id)
            except StoreUnavailable as exc:
                raise ApiError(503, str(exc), type="api_error", code="key_store_unavailable") from None
            with self._lock:
                if row is None:
                    if len(self._unknown) < _VERIFIED_MAX:
                        self._unknown.add(key_id)
                else:
                    self._cache[row.id] = (self._record(row), row.salt, row.digest)
        with self._lock:
            record = self._known(presented, key_id)
        return self._usable(record, now)

    @staticmethod
    def _key_id(presented: str) -> str:
        m = _KEY_RE.match(presented)
        if m is None:
            raise unauthorized("invalid API key")
        return m.group(1)

    def _known(self, presented: str, key_id: str) -> ApiKey:
        """The record whose HMAC matches (call under the lock)."""
        record = self._verified.get(presented)
        if record is not None:
            return record
        # Compare against a dummy digest for unknown ids so both paths cost the same.
        entry = self._cache.get(key_id)
        found, salt, digest = entry if entry else (None, b"\0" * 16, b"\0" * 32)
        if not hmac.compare_digest(_digest(salt, presented), digest) or found is None:
            raise unauthorized("invalid API key")
        if len(self._verified) < _VERIFIED_MAX:
            self._verified[presented] = found
        return found

    @staticmethod
    def _usable(record: ApiKey, now: float | None) -> ApiKey:
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
        row = KeyRow(
            key_id,
            name,
            salt,
            _digest(salt, plain),
            json.dumps(list(patterns)),
            rpm,
            tpm,
            max_concurrent,
            expires_at,
            time.time(),
            None,
            None,
        )
        try:
            self.table.insert(row)
        except DuplicateName:
            raise InputError(
                f"an active key named '{name}' already exists",
                fix=f"choose another name, or `wave keys rotate {name}`",
            ) from None
        self._changed()
        return IssuedKey(self._record(row), Secret(plain, name=f"API key {name}"))

    @staticmethod
    def _new_secret(key_id: str) -> tuple[str, bytes]:
        return f"{PREFIX}{key_id}_{_random.token_urlsafe(32)}", _random.token_bytes(16)

    def revoke(self, name_or_id: str) -> ApiKey:
        key = self.get(name_or_id)
        if key.revoked_at is None:
            now = time.time()
            self.table.update(key.id, {"revoked_at": now})
            self._changed()
            key = replace(key, revoked_at=now)
        return key

    def update(
        self,
        name_or_id: str,
        *,
        models: Sequence[str],
        expires_at: float | None,
        rpm: int | None,
        tpm: int | None,
        max_concurrent: int | None,
    ) -> ApiKey:
        """New models and limits for an active key (None = no limit / no expiry); its secret stays."""
        key = self.get(name_or_id)
        if key.revoked_at is not None:
            raise InputError(f"key '{key.name}' ({key.id}) is revoked", fix="create a new key instead")
        patterns = tuple(p.strip() for p in models if p.strip())
        if not patterns:
            raise InputError("a key needs at least one model pattern", fix="e.g. '*' or 'llama-*'")
        for value, label in ((rpm, "rpm"), (tpm, "tpm"), (max_concurrent, "max-concurrent")):
            _positive(label, value)
        if expires_at is not None and expires_at <= time.time():
            raise InputError("expiry is in the past", fix="give a future date or a duration like 30d")
        fields = {"models": json.dumps(list(patterns)), "rpm": rpm, "tpm": tpm}
        self.table.update(key.id, {**fields, "max_concurrent": max_concurrent, "expires_at": expires_at})
        self._changed()
        return self.get(key.id)

    def rotate(self, name_or_id: str) -> IssuedKey:
        """A new secret for the same key (id, name, models, limits); the old secret stops working now."""
        key = self.get(name_or_id)
        if key.revoked_at is not None:
            raise InputError(f"key '{key.name}' ({key.id}) is revoked", fix="create a new key instead")
        plain, salt = self._new_secret(key.id)
        now = time.time()
        self.table.update(key.id, {"salt": salt, "digest": _digest(salt, plain), "rotated_at": now})
        self._changed()
        return IssuedKey(replace(key, rotated_at=now), Secret(plain, name=f"API key {key.name}"))

    def _changed(self) -> None:
        """This process wrote: reread the table on the next use (the written record is returned as
        written, not reread: another replica's copy of a PostgreSQL table may lag by a notification)."""
        with self._lock:
            self._version = -1
