"""A bounded local spool for audit entries the database could not take (PostgreSQL down, SQLite locked).

Each `AuditLog` writer owns one file, `<dir>/spool-<pid>-<random>.jsonl`, locked with `flock` while
it lives: entries are appended as JSON lines and fsync'd before the writer moves on, kept in
memory too, and written to the table oldest first once it answers again; the file is emptied when
everything in it is in the table. A writer that starts finds the files of writers that died
(their lock is free), takes their entries first and drops the ones the table already holds (it
may have died between writing a batch and emptying its file).

`max_bytes` bounds what is spooled: past it the gateway stops admitting requests (503
`audit_unavailable`), since serving them would mean losing their rows; the rows of requests
already admitted and of refusals are still spooled up to twice the bound, and only past that
dropped (and counted).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from collections import deque
from pathlib import Path
from typing import Any

import orjson
import psutil

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
CREATING = ".new"


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:  # its writer closed it empty since the directory was listed
        return 0.0


class Spool:
    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.directory = directory
        self.max_bytes = max_bytes
        name = f"spool-{os.getpid()}-{secrets.token_hex(4)}.jsonl"
        self.path = directory / name
        # Locked before it is visible under its name: a writer starting at the same moment would
        # otherwise find it unlocked and take it for a dead writer's.
        creating = directory / (name + CREATING)
        fd = os.open(creating, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(creating, self.path)
        self._fd = fd
        self._entries: deque[tuple[dict[str, Any], int]] = deque()  # (entry, its bytes in the file)
        self.bytes = 0
        self.dropped = 0
        self.adopted: list[dict[str, Any]] = []  # from dead writers: may already be in the table
        self._adopted_files: list[tuple[Path, int]] = []
        self._adopt()

    def _adopt(self) -> None:
        for stale in self.directory.glob("spool-*.jsonl" + CREATING):
            if not psutil.pid_exists(int(stale.name.split("-")[1])):
                stale.unlink(missing_ok=True)  # its writer died before it held a single entry
        for other in sorted(self.directory.glob("spool-*.jsonl"), key=_mtime):
            if other == self.path:
                continue
            try:
                fd = os.open(other, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live writer's
                continue
            data = b""
            while chunk := os.read(fd, 1 << 20):
                data += chunk
            for line in data.splitlines(keepends=True):
                if line.endswith(b"\n"):  # a line cut by a crash was never acknowledged
                    self.adopted.append(orjson.loads(line))
            self._adopted_files.append((other, fd))  # locked until its entries are in the table

    def __len__(self) -> int:
        return len(self._entries) + len(self.adopted)

    @property
    def full(self) -> bool:
        return self.bytes >= self.max_bytes

    def add(self, entries: list[dict[str, Any]]) -> None:
        """Append durably (fsync) before returning; past twice the bound, drop and count."""
        lines = []
        for e in entries:
            if self.bytes >= 2 * self.max_bytes:
                self.dropped += 1
                continue
            line = orjson.dumps(e) + b"\n"
            lines.append(line)
            self._entries.append((e, len(line)))
            self.bytes += len(line)
        if lines:
            os.write(self._fd, b"".join(lines))
            os.fsync(self._fd)

    def head(self, n: int) -> tuple[list[dict[str, Any]], bool]:
        """Up to `n` oldest entries, and whether they were adopted (must be checked against the table)."""
        if self.adopted:
            return self.adopted[:n], True
        return [e for e, _ in list(self._entries)[:n]], False

    def pop(self, n: int, adopted: bool) -> None:
        """The `n` oldest entries are in the table now."""
        if adopted:
            del self.adopted[:n]
            if not self.adopted:
                for path, fd in self._adopted_files:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    os.close(fd)
                self._adopted_files = []
            return
        for _ in range(min(n, len(self._entries))):
            _, size = self._entries.popleft()
            self.bytes -= size
        if not self._entries:
            os.ftruncate(self._fd, 0)
            self.bytes = 0

    def close(self) -> None:
        """Release the file: removed when empty, else left for the next writer to adopt."""
        if not self._entries and not self.adopted:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)
        for _, fd in self._adopted_files:
            os.close(fd)
        self._adopted_files = []
