"""Append-only audit log: one row per request, the rows forming a SHA-256 hash chain.

Each row stores `prev_hash` (the previous row's hash; 64 zeros for the first) and
`hash = sha256(prev_hash + "\\n" + canonical JSON of the row, id included)`. Editing a row breaks
its own hash; deleting one leaves a gap in the ids and a `prev_hash` that points at nothing;
cutting rows off the end leaves the table's id counter (SQLite's AUTOINCREMENT, PostgreSQL's
chain head) above the last id. `verify` names the first row where any of that shows. A chain
cannot stop someone who rewrites every later row too; keep the head hash `verify` prints
somewhere else (a ticket, a log shipper) to catch that.

The rows live in an audit table (`waveidp.security.state`): SQLite `WAVE_HOME/audit.db`, or
PostgreSQL shared by several replicas; each table keeps one chain with several writers.

The gateway calls `AuditLog.record` on its event loop; that only enqueues. One writer thread
drains the queue in batches, each batch one append. When the table cannot take a batch (the
database is down), the batch goes to a bounded local spool (`audit_spool.py`) and every later
one after it, in order, until the table answers again and the spool is written out first.
Prompt text is stored only when `log_prompts` is on.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from waveidp.security.audit_spool import DEFAULT_MAX_BYTES, Spool
from waveidp.security.state import (
    FIELDS,
    GENESIS,
    AuditFilter,
    AuditTable,
    StoreUnavailable,
    UsageBucket,
    audit_table,
    identity,
    row_hash,
)

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditFilter",
    "AuditLog",
    "UsageBucket",
    "Verdict",
    "page",
    "readable",
    "row_hash",
    "rows",
    "totals",
    "usage",
    "verify",
]

log = logging.getLogger("waveidp.security.audit")

_BATCH = 2048
# The writer waits this long after an entry before writing, so that one transaction (one fsync)
# carries every entry of that moment: under load, batches of one cost ~0.35 ms of the writer each
# and its constant wake-ups take the GIL from the event loop.
LINGER_S = 0.05
RETRY_S = 1.0  # while the table is unavailable, try it again this often


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


def bounded_name(name: str) -> str:
    """`name` within `MAX_NAME_CHARS` (a client's model name): whole, or its start and its length."""
    if len(name) <= MAX_NAME_CHARS:
        return name
    return f"{name[: MAX_NAME_CHARS - 32]}...({len(name)} chars)"


def default_path() -> Path:
    from waveidp.paths import wave_home

    return wave_home() / "audit.db"


Where = Path | str | AuditTable | None  # the SQLite file (None: WAVE_HOME's), a PostgreSQL URL, a table


def _table(where: Where, *, readonly: bool = False) -> AuditTable:
    if isinstance(where, str):
        return audit_table(where, readonly=readonly)
    if where is None or isinstance(where, Path):
        return audit_table(None, where or default_path(), readonly=readonly)
    return where


def readable(where: Where) -> bool:
    """There is an audit log to read at `where` (a SQLite file not written yet is not)."""
    if isinstance(where, Path):
        return where.exists()
    return where is not None


def _opened(where: Where) -> bool:
    return where is None or isinstance(where, (Path, str))


class AuditLog:
    """Non-blocking appends from the gateway; a daemon thread does the writing."""

    def __init__(
        self,
        table: Path | AuditTable | None = None,
        *,
        log_prompts: bool = False,
        spool_dir: Path | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        """`table`: an audit table, or the path of an SQLite audit database (default WAVE_HOME/audit.db).
        `spool_dir`: where entries wait while the table is down (default WAVE_HOME/audit-spool)."""
        self.table = _table(table)
        self.path = getattr(self.table, "path", None)
        self.log_prompts = log_prompts
        if spool_dir is None:
            from waveidp.paths import wave_home

            spool_dir = wave_home() / "audit-spool"
        self.spool = Spool(spool_dir, spool_max_bytes)
        self._queue: queue.SimpleQueue[AuditEntry | threading.Event | None] = queue.SimpleQueue()
        self.written = 0
        self.available = True  # the last append (or retry) reached the table
        self._next_try = 0.0
        self._thread = threading.Thread(target=self._run, name="wave-audit-writer", daemon=True)
        self._thread.start()

    @property
    def full(self) -> bool:
        """The spool is at its bound: admitting more requests would mean losing their rows."""
        return self.spool.full

    @property
    def spooled(self) -> int:
        return len(self.spool)

    @property
    def dropped(self) -> int:
        return self.spool.dropped

    def record(self, entry: AuditEntry) -> None:
        """Queue one entry (never blocks); prompt text is dropped unless `log_prompts`; a model name
        longer than `MAX_NAME_CHARS` (a client's string) is cut, saying how long it was."""
        if (entry.prompt is not None and not self.log_prompts) or not entry.ts:
            prompt = entry.prompt if self.log_prompts else None
            entry = replace(entry, prompt=prompt, ts=entry.ts or time.time())
        if entry.model is not None and len(entry.model) > MAX_NAME_CHARS:
            entry = replace(entry, model=bounded_name(entry.model))
        self._queue.put(entry)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written or spooled."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.spool.close()
        self.table.close()

    def _run(self) -> None:
        stop = False
        behind = False
        while not stop:
            batch: list[AuditEntry] = []
            waiters: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=RETRY_S if len(self.spool) else None)
            except queue.Empty:
                self._drain()
                continue
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
                self._write([{k: getattr(e, k) for k in FIELDS} for e in batch])
            for w in waiters:
                w.set()
        if len(self.spool):
            self._drain(force=True)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        if len(self.spool):
            self.spool.add(entries)  # behind what is already spooled, in order
            self._drain()
            return
        try:
            self.table.append(entries)
            self.written += len(entries)
        except StoreUnavailable as exc:
            self.spool.add(entries)
            self._unavailable(exc)

    def _drain(self, force: bool = False) -> None:
        """Write the spool out, oldest first, while the table takes it."""
        if not force and time.monotonic() < self._next_try:
            return
        try:
            while len(self.spool):
                chunk, adopted = self.spool.head(_BATCH)
                todo = chunk
                if adopted:
                    stored = self.table.present(chunk)
                    todo = [e for e in chunk if identity(e) not in stored]
                if todo:
                    self.table.append(todo)
                    self.written += len(todo)
                self.spool.pop(len(chunk), adopted)
        except StoreUnavailable as exc:
            self._unavailable(exc)
            return
        if not self.available:
            log.warning("audit table %s answers again; spool written out", self.table.where)
        self.available = True

    def _unavailable(self, exc: StoreUnavailable) -> None:
        if self.available:
            log.error("audit rows go to the spool %s: %s", self.spool.path, exc)
        self.available = False
        self._next_try = time.monotonic() + RETRY_S


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


def verify(where: Where = None) -> Verdict:
    """Walk the chain; stop at the first row that was edited, deleted or cut off."""
    table = _table(where, readonly=True)
    try:
        # the id counter first: rows appended while the walk goes on are past it, never "missing"
        top = table.assigned()
        prev, last_id, count = GENESIS, 0, 0
        for values in table.rows():
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
        if top > last_id:
            first = last_id + 1
            return Verdict(
                False,
                count,
                prev,
                first,
                f"rows {first}-{top} deleted from the end of the log"
                if top > first
                else f"row {first} deleted from the end of the log",
            )
        return Verdict(True, count, prev)
    finally:
        if _opened(where):
            table.close()


def rows(where: Where = None, *, last: int | None = None) -> Iterator[dict[str, Any]]:
    """Rows oldest first; `last` keeps only the newest n."""
    table = _table(where, readonly=True)
    try:
        yield from table.rows(last=last)
    finally:
        if _opened(where):
            table.close()


# --- queries for the console (newest first, filtered in the database) ------------------------------


def page(
    where: Where = None, *, match: AuditFilter | None = None, before: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Up to `limit` rows, newest first, older than row id `before` (the next page), matching `match`."""
    table = _table(where, readonly=True)
    try:
        return table.page(match or AuditFilter(), before=before, limit=limit)
    finally:
        if _opened(where):
            table.close()


def usage(
    where: Where = None, *, since: float, bucket_s: float, principal: str | None = None
) -> list[UsageBucket]:
    """Requests, errors and tokens per `bucket_s` since `since`, for one principal or all; model
    requests only (the console's own actions, endpoint `console.*`, are rows of the chain too)."""
    table = _table(where, readonly=True)
    try:
        return table.usage(since=since, bucket_s=bucket_s, principal=principal)
    finally:
        if _opened(where):
            table.close()


def totals(where: Where = None, *, since: float) -> dict[str, UsageBucket]:
    """Per principal since `since`: requests, errors and tokens (model requests only)."""
    table = _table(where, readonly=True)
    try:
        return table.totals(since=since)
    finally:
        if _opened(where):
            table.close()
