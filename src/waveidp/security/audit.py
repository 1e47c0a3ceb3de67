"""Append-only audit log: one SQLite row per request, the rows forming a SHA-256 hash chain.

Each row stores `prev_hash` (the previous row's hash; 64 zeros for the first) and
`hash = sha256(prev_hash + "\\n" + canonical JSON of the row, id included)`. Editing a row breaks
its own hash; deleting one leaves a gap in the ids and a `prev_hash` that points at nothing;
cutting rows off the end leaves SQLite's AUTOINCREMENT counter above the last id. `verify` names
the first row where any of that shows. A chain cannot stop someone who rewrites every later row
too; keep the head hash `verify` prints somewhere else (a ticket, a log shipper) to catch that.

The gateway calls `AuditLog.record` on its event loop; that only enqueues. One writer thread
drains the queue in batches, each batch one `BEGIN IMMEDIATE` transaction that reads the current
head first, so several gateway processes can append to the same file without forking the chain.
Prompt text is stored only when `log_prompts` is on.
"""

from __future__ import annotations

import hashlib
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import orjson

GENESIS = "0" * 64
_FIELDS = (
    "ts",
    "request_id",
    "principal",
    "endpoint",
    "model",
    "backend",
    "status",
    "tokens_in",
    "tokens_out",
    "latency_s",
    "prompt",
)
_SCHEMA = """
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
_BATCH = 2048
# The writer waits this long after an entry before writing, so that one transaction (one fsync)
# carries every entry of that moment: under load, batches of one cost ~0.35 ms of the writer each
# and its constant wake-ups take the GIL from the event loop.
LINGER_S = 0.05
_INSERT = (
    f"INSERT INTO audit (id, {', '.join(_FIELDS)}, prev_hash, hash) "
    f"VALUES (?, {', '.join('?' * len(_FIELDS))}, ?, ?)"
)


@dataclass(frozen=True)
class AuditEntry:
    """One request as the audit log keeps it."""

    principal: str
    status: int
    ts: float = 0.0
    request_id: str | None = None
    endpoint: str | None = None
    model: str | None = None
    backend: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    latency_s: float | None = None
    prompt: str | None = None


MAX_NAME_CHARS = 256


def cut(name: str) -> str:
    """`name` within `MAX_NAME_CHARS`: its start and its length."""
    return f"{name[: MAX_NAME_CHARS - 32]}...({len(name)} chars)"


def row_hash(prev_hash: str, row_id: int, values: dict[str, Any]) -> str:
    canonical = orjson.dumps({"id": row_id, **{k: values[k] for k in _FIELDS}}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical).hexdigest()


def default_path() -> Path:
    from waveidp.paths import wave_home

    return wave_home() / "audit.db"


def _connect(path: Path) -> sqlite3.Connection:
    from waveidp.paths import private_file

    # 0600 before SQLite opens it: its -wal and -shm files are created with the database's mode
    db = sqlite3.connect(private_file(path), isolation_level=None, timeout=30.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a crash of the gateway, and the chain stays consistent after
    # a power cut, which may lose the last commits (as it loses the entries still queued); FULL
    # cost an fsync per 50 ms batch on the hot path's CPU.
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(_SCHEMA)
    return db


def prepare(path: Path | None = None) -> None:
    """Create the database, its table and WAL mode once, before several processes open it at the
    same moment (switching a new file to WAL takes a lock that a second opener cannot wait for)."""
    path = path or default_path()
    _connect(path).close()


def _head(db: sqlite3.Connection) -> tuple[int, str]:
    """(highest id ever assigned, hash of the last row) — inside the caller's transaction."""
    seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
    last = db.execute("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
    top = max(seq[0] if seq else 0, last[0] if last else 0)
    return top, last[1] if last else GENESIS


def append(db: sqlite3.Connection, entries: list[AuditEntry]) -> None:
    """Append `entries` to the chain in one transaction (the writer thread's only write)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        top, prev = _head(db)
        rows = []
        for e in entries:
            top += 1
            values = {k: getattr(e, k) for k in _FIELDS}
            digest = row_hash(prev, top, values)
            rows.append((top, *values.values(), prev, digest))
            prev = digest
        db.executemany(_INSERT, rows)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class AuditLog:
    """Non-blocking appends from the gateway; a daemon thread does the writing."""

    def __init__(self, path: Path | None = None, *, log_prompts: bool = False) -> None:
        self.path = path or default_path()
        self.log_prompts = log_prompts
        self._db = _connect(self.path)
        self._queue: queue.SimpleQueue[AuditEntry | threading.Event | None] = queue.SimpleQueue()
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="wave-audit-writer", daemon=True)
        self._thread.start()

    def record(self, entry: AuditEntry) -> None:
        """Queue one entry (never blocks); prompt text is dropped unless `log_prompts`; a model name
        longer than `MAX_NAME_CHARS` (a client's string) is cut, saying how long it was."""
        if (entry.prompt is not None and not self.log_prompts) or not entry.ts:
            prompt = entry.prompt if self.log_prompts else None
            entry = replace(entry, prompt=prompt, ts=entry.ts or time.time())
        if entry.model is not None and len(entry.model) > MAX_NAME_CHARS:
            entry = replace(entry, model=cut(entry.model))
        self._queue.put(entry)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._db.close()

    def _run(self) -> None:
        stop = False
        behind = False
        while not stop:
            batch: list[AuditEntry] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            # Linger only when caught up: with a full batch still queued, a pause per batch capped
            # the writer near 512 rows / 50 ms, and above that rate the queue (and RSS) grew
            # without bound while the log fell behind.
            if isinstance(item, AuditEntry) and not behind:
                time.sleep(LINGER_S)
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batch.append(item)
                if stop or len(batch) >= _BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            behind = len(batch) >= _BATCH
            if batch:
                try:
                    append(self._db, batch)
                    self.written += len(batch)
                except sqlite3.Error:
                    self.failed += len(batch)
            for w in waiters:
                w.set()


# --- reading and checking ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    rows: int
    head: str
    broken_row: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _open_readonly(path: Path) -> sqlite3.Connection:
    if not path.exists():
        from waveidp.errors import InputError

        raise InputError(f"no audit log at {path}", fix="start the gateway with auditing on, or pass --db")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    return db


def verify(path: Path | None = None) -> Verdict:
    """Walk the chain; stop at the first row that was edited, deleted or cut off."""
    path = path or default_path()
    db = _open_readonly(path)
    try:
        prev, last_id, count = GENESIS, 0, 0
        for row in db.execute("SELECT * FROM audit ORDER BY id"):
            values = dict(row)
            rid = values["id"]
            if rid != last_id + 1:
                missing = f"row {last_id + 1}" if rid == last_id + 2 else f"rows {last_id + 1}-{rid - 1}"
                return Verdict(
                    False, count, prev, last_id + 1, f"{missing} deleted (row {rid} follows row {last_id})"
                )
            if values["prev_hash"] != prev:
                return Verdict(False, count, prev, rid, "prev_hash does not match the previous row's hash")
            if row_hash(prev, rid, values) != values["hash"]:
                return Verdict(False, count, prev, rid, "contents do not match the row's hash (edited)")
            prev, last_id, count = values["hash"], rid, count + 1
        seq = db.execute("SELECT seq FROM sqlite_sequence WHERE name='audit'").fetchone()
        if seq and seq[0] > last_id:
            first = last_id + 1
            return Verdict(
                False,
                count,
                prev,
                first,
                f"rows {first}-{seq[0]} deleted from the end of the log"
                if seq[0] > first
                else f"row {first} deleted from the end of the log",
            )
        return Verdict(True, count, prev)
    finally:
        db.close()


def rows(path: Path | None = None, *, last: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows oldest first; `last` keeps only the newest n."""
    db = _open_readonly(path or default_path())
    try:
        if last is not None:
            query = "SELECT * FROM (SELECT * FROM audit ORDER BY id DESC LIMIT ?) ORDER BY id"
            cursor = db.execute(query, (last,))
        else:
            cursor = db.execute("SELECT * FROM audit ORDER BY id")
        for row in cursor:
            yield dict(row)
    finally:
        db.close()
