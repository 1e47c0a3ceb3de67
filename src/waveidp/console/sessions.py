"""Console sign-in sessions, kept server-side in `WAVE_HOME/console.db` (mode 0600).

The browser holds only a random 256-bit session id in an HttpOnly cookie; the database holds its
SHA-256, so a copied database opens no session. A row carries who signed in (`subject`), how
(`method`: admin-key or oidc), the role (admin or viewer), the session's CSRF token, and for OIDC
the access token the playground sends to `/v1` on the user's behalf. Sessions end at logout, after
`idle_s` without a request, or `absolute_s` after sign-in, whichever comes first.

A database rather than process memory: `wave serve --workers N` runs N processes and a browser's
connections land on any of them.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from waveidp.console.oidc import Pending

Role = Literal["admin", "viewer"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS console_sessions (
  id_hash TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  method TEXT NOT NULL,
  role TEXT NOT NULL,
  csrf TEXT NOT NULL,
  access_token TEXT,
  created_at REAL NOT NULL,
  seen_at REAL NOT NULL,
  expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS console_pending_logins (
  state_hash TEXT PRIMARY KEY,
  verifier TEXT NOT NULL,
  nonce TEXT NOT NULL,
  redirect_uri TEXT NOT NULL,
  created_at REAL NOT NULL
);
"""
PENDING_TTL_S = 600.0  # an OIDC sign-in must come back within this
_TOUCH_EVERY_S = 30.0  # seen_at is written at most this often per session


@dataclass(frozen=True)
class Session:
    subject: str
    method: str
    role: Role
    csrf: str
    access_token: str | None
    created_at: float
    seen_at: float
    expires_at: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, path: Path | None = None, *, idle_s: float = 3600.0, absolute_s: float = 8 * 3600.0):
        if path is None:
            from waveidp.paths import wave_home

            path = wave_home() / "console.db"
        from waveidp.paths import private_file

        self.path = path
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self._lock = threading.Lock()
        # 0600 before SQLite opens it: its -wal and -shm files are created with the database's mode
        self._db = sqlite3.connect(
            private_file(path), check_same_thread=False, isolation_level=None, timeout=10.0
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def create(self, subject: str, method: str, role: Role, access_token: str | None = None) -> str:
        """A new session; returns its id (the cookie value), which is stored only as a hash."""
        session_id = secrets.token_urlsafe(32)
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            self._db.execute(
                "INSERT INTO console_sessions VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    _hash(session_id),
                    subject,
                    method,
                    role,
                    secrets.token_urlsafe(32),
                    access_token,
                    now,
                    now,
                    now + self.absolute_s,
                ),
            )
        return session_id

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None (unknown, logged out, idle too long, expired)."""
        if not session_id or len(session_id) > 128:
            return None
        key = _hash(session_id)
        now = time.time()
        with self._lock:
            row = self._db.execute(
                "SELECT subject, method, role, csrf, access_token, created_at, seen_at, expires_at "
                "FROM console_sessions WHERE id_hash=?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            session = Session(*row)
            if now >= session.expires_at or now - session.seen_at >= self.idle_s:
                self._db.execute("DELETE FROM console_sessions WHERE id_hash=?", (key,))
                return None
            if now - session.seen_at >= _TOUCH_EVERY_S:
                self._db.execute("UPDATE console_sessions SET seen_at=? WHERE id_hash=?", (now, key))
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._db.execute("DELETE FROM console_sessions WHERE id_hash=?", (_hash(session_id),))

    def put_pending(self, state: str, pending: Pending) -> None:
        now = time.time()
        with self._lock:
            self._db.execute(
                "DELETE FROM console_pending_logins WHERE created_at <= ?", (now - PENDING_TTL_S,)
            )
            self._db.execute(
                "INSERT INTO console_pending_logins VALUES (?,?,?,?,?)",
                (_hash(state), pending.verifier, pending.nonce, pending.redirect_uri, now),
            )

    def take_pending(self, state: str) -> Pending | None:
        """The sign-in started with this state, once (a second callback with it finds nothing)."""
        key = _hash(state)
        with self._lock:
            row = self._db.execute(
                "DELETE FROM console_pending_logins WHERE state_hash=? "
                "RETURNING verifier, nonce, redirect_uri, created_at",
                (key,),
            ).fetchone()
        if row is None or time.time() - row[3] > PENDING_TTL_S:
            return None
        return Pending(row[0], row[1], row[2])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def prepare_sessions(path: Path | None = None) -> None:
    """Create the sessions database and switch it to WAL once, before several gateway workers open
    it at the same moment (switching a new file to WAL takes a lock that a second opener cannot
    wait for: `database is locked` in one worker)."""
    SessionStore(path).close()
