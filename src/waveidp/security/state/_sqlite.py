"""SQLite tables: `WAVE_HOME/keys.db` and `WAVE_HOME/audit.db`, the embedded default for one machine.

Several gateway processes on one machine share the files: the key table's `version` is SQLite's
`PRAGMA data_version` (it moves when another connection commits), and each audit append is one
`BEGIN IMMEDIATE` transaction that reads the head inside it, so writers take turns and the chain
never forks. Ids come from AUTOINCREMENT, whose counter (`sqlite_sequence`) shows rows cut off
the end.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from waveidp.security.state._chain import FIELDS, GENESIS, identity, link
from waveidp.security.state._interface import (
    KEY_COLUMNS,
    AuditFilter,
    AuditQueries,
    DuplicateName,
    KeyRow,
    StoreUnavailable,
    UsageBucket,
    usage_buckets,
    usage_totals,
)

_KEYS_SCHEMA = """
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

_AUDIT_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ts REAL NOT NULL,
  request_id TEXT,
  principal TEXT NOT NULL,
  endpoint TEXT,
  model TEXT,
  backend TEXT,
  status INTEGER NOT NULL,
  tokens_in INTEGER,
  tokens_out INTEGER,
  latency_s REAL,
  prompt TEXT,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
"""
_INSERT_AUDIT = (
    f"INSERT INTO audit (id, {', '.join(FIELDS)}, prev_hash, hash) "
    f"VALUES (?, {', '.join('?' * len(FIELDS))}, ?, ?)"
)


def _open(path: Path, schema: str, timeout: float) -> sqlite3.Connection:
    from waveidp.paths import private_file

    # 0600 before SQLite opens it: its -wal and -shm files are created with the database's mode
    db = sqlite3.connect(private_file(path), check_same_thread=False, isolation_level=None, timeout=timeout)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(schema)
    return db


class SqliteKeyTable:
    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.where = str(path)
        self._lock = threading.Lock()
        self._db = _open(path, _KEYS_SCHEMA, 10.0)
        self._own_writes = 0

    def watch(self) -> None:
        return None  # data_version is one local read already

    def version(self) -> int:
        # data_version moves only for other connections' commits; this one's writes count apart
        with self._lock:
            return self._db.execute("PRAGMA data_version").fetchone()[0] * 1_000_003 + self._own_writes

    def rows(self) -> list[KeyRow]:
        with self._lock:
            found = self._db.execute(f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys").fetchall()
        return [KeyRow(*r) for r in found]

    async def fetch(self, key_id: str) -> KeyRow | None:
        with self._lock:
            r = self._db.execute(
                f"SELECT {', '.join(KEY_COLUMNS)} FROM api_keys WHERE id=?", (key_id,)
            ).fetchone()
        return KeyRow(*r) if r else None

    def insert(self, row: KeyRow) -> None:
        values = tuple(getattr(row, c) for c in KEY_COLUMNS)
        try:
            self._write(f"INSERT INTO api_keys VALUES ({', '.join('?' * len(values))})", values)
        except sqlite3.IntegrityError:
            raise DuplicateName(row.name) from None

    def update(self, key_id: str, fields: dict[str, Any]) -> None:
        sets = ", ".join(f"{k}=?" for k in fields)
        self._write(f"UPDATE api_keys SET {sets} WHERE id=?", (*fields.values(), key_id))

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock:
            self._db.execute(sql, args)
            self._own_writes += 1

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()


_QUERIES = AuditQueries("audit", "?", "CAST({} AS INTEGER)")  # ts >= since: truncating floors


class SqliteAuditTable:
    shared = False

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.where = str(path)
        if readonly:
            if not path.exists():
                from waveidp.errors import InputError

                raise InputError(
                    f"no audit log at {path}", fix="start the gateway with auditing on, or pass --db"
                )
            self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        else:
            self._db = _open(path, _AUDIT_SCHEMA, 30.0)
            # WAL + NORMAL: a commit survives a crash of the gateway, and the chain stays consistent
            # after a power cut, which may lose the last commits (as it loses the entries still
            # queued); FULL cost an fsync per 50 ms batch on the hot path's CPU.
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.row_factory = sqlite3.Row

    def _head(self) -> tuple[int, str]:
        """(highest id ever assigned, hash of the last row): inside the caller's transaction."""
        last = self._db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        top = max(self.assigned(), last[0] if last else 0)
        return top, last[1] if last else GENESIS

    def append(self, entries: Sequence[dict[str, Any]]) -> None:
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"audit log {self.path}: {exc}") from None
        try:
            top, prev = self._head()
            rows, _, _ = link(top, prev, entries)
            db.executemany(_INSERT_AUDIT, rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            db.execute("ROLLBACK")
            raise StoreUnavailable(f"audit log {self.path}: {exc}") from None

    def present(self, entries: Sequence[dict[str, Any]]) -> set[tuple[Any, ...]]:
        if not entries:
            return set()
        low, high = min(e["ts"] for e in entries), max(e["ts"] for e in entries)
        found = self._db.execute(
            "SELECT ts, principal, request_id, status FROM audit WHERE ts BETWEEN ? AND ?", (low, high)
        )
        stored = {tuple(r) for r in found}
        return {identity(e) for e in entries} & stored

    def rows(self, *, after: int = 0, last: int | None = None) -> Iterator[dict[str, Any]]:
        if last is not None:
            query = "SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id"
            cursor = self._db.execute(query, (last,))
        else:
            cursor = self._db.execute("SELECT * FROM audit WHERE id > ? ORDER BY id", (after,))
        for row in cursor:
            yield dict(row)

    def page(self, where: AuditFilter, *, before: int | None, limit: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute(*_QUERIES.page(where, before, limit))]

    def usage(self, *, since: float, bucket_s: float, principal: str | None = None) -> list[UsageBucket]:
        return usage_buckets(self._db.execute(*_QUERIES.usage(since, bucket_s, principal)), since, bucket_s)

    def totals(self, *, since: float) -> dict[str, UsageBucket]:
        return usage_totals(self._db.execute(*_QUERIES.totals(since)), since)

    def assigned(self) -> int:
        seq = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        last = self._db.execute("SELECT MAX(id) FROM audit").fetchone()
        return max(seq[0] if seq else 0, last[0] or 0)

    def close(self) -> None:
        self._db.close()


def prepare_audit(path: Path) -> None:
    """Create the audit database, its table and WAL mode once, before several processes open it at
    the same moment (switching a new file to WAL takes a lock that a second opener cannot wait for)."""
    SqliteAuditTable(path).close()
