"""What the key store and the audit log need from a database, and nothing more.

Two tables, two small interfaces. SQLite (`_sqlite.py`, the embedded default: one machine, one
or several gateway processes) and PostgreSQL (`_postgres.py`: several gateway replicas on
several hosts) implement both; `KeyStore` and `AuditLog` hold the logic and never see SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from waveidp.errors import WaveError


class StoreUnavailable(WaveError):
    """The database cannot be reached (or failed) right now: a condition to wait out, not bad input."""

    exit_code = 1


class DuplicateName(Exception):
    """An active key already has this name (the unique index refused the row)."""


@dataclass(frozen=True)
class KeyRow:
    """One row of the key table, as stored: the salt and digest, never the key."""

    id: str
    name: str
    salt: bytes
    digest: bytes
    models: str  # JSON list of glob patterns
    rpm: int | None
    tpm: int | None
    max_concurrent: int | None
    expires_at: float | None
    created_at: float
    rotated_at: float | None
    revoked_at: float | None


KEY_COLUMNS = tuple(KeyRow.__dataclass_fields__)


@dataclass(frozen=True)
class AuditFilter:
    """Rows to show: each set field must match exactly; `status` is a class ("2xx", "4xx", "5xx")."""

    principal: str | None = None
    model: str | None = None
    backend: str | None = None
    endpoint: str | None = None
    status: str | None = None
    requests_only: bool = False  # leave out the console's own actions (endpoint `console.*`)

    def clauses(self, mark: str) -> tuple[list[str], list[Any]]:
        """SQL conditions with `mark` as the parameter placeholder (`?` or `%s`), and their values."""
        clauses = [f"(endpoint IS NULL OR endpoint NOT LIKE {mark})"] if self.requests_only else []
        args: list[Any] = ["console.%"] if self.requests_only else []
        for column in ("principal", "model", "backend", "endpoint"):
            value = getattr(self, column)
            if value:
                clauses.append(f"{column} = {mark}")
                args.append(value)
        if self.status and len(self.status) == 3 and self.status[0].isdigit() and self.status[1:] == "xx":
            low = int(self.status[0]) * 100
            clauses += [f"status >= {mark}", f"status < {mark}"]
            args += [low, low + 100]
        return clauses, args


@dataclass(frozen=True)
class UsageBucket:
    start: float  # epoch seconds
    requests: int
    errors: int  # status >= 400
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True)
class AuditQueries:
    """The console's reads of the audit table, written once for both databases: what differs is
    the table's name, the parameter mark and how a number is floored."""

    table: str
    mark: str  # `?` (SQLite) or `%s` (PostgreSQL)
    floor: str  # an SQL expression of `{}` rounded down to an integer

    def page(self, where: AuditFilter, before: int | None, limit: int) -> tuple[str, list[Any]]:
        clauses, args = where.clauses(self.mark)
        if before is not None:
            clauses.append(f"id < {self.mark}")
            args.append(before)
        sql = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return f"SELECT * FROM {self.table}{sql} ORDER BY id DESC LIMIT {self.mark}", [*args, limit]

    def _sums(self) -> str:
        return (
            "COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), "
            f"COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0) FROM {self.table} "
            f"WHERE ts >= {self.mark} AND (endpoint IS NULL OR endpoint NOT LIKE {self.mark})"
        )

    def usage(self, since: float, bucket_s: float, principal: str | None) -> tuple[str, list[Any]]:
        bucket = self.floor.format(f"(ts - {self.mark}) / {self.mark}")
        sql = f"SELECT {bucket} AS b, {self._sums()}"
        args: list[Any] = [since, bucket_s, since, "console.%"]
        if principal is not None:
            sql += f" AND principal = {self.mark}"
            args.append(principal)
        return sql + " GROUP BY b ORDER BY b", args

    def totals(self, since: float) -> tuple[str, list[Any]]:
        return f"SELECT principal, {self._sums()} GROUP BY principal", [since, "console.%"]


def usage_buckets(rows: Iterable[Sequence[Any]], since: float, bucket_s: float) -> list[UsageBucket]:
    return [
        UsageBucket(since + b * bucket_s, n, int(err or 0), int(tin), int(tout))
        for b, n, err, tin, tout in rows
    ]


def usage_totals(rows: Iterable[Sequence[Any]], since: float) -> dict[str, UsageBucket]:
    return {p: UsageBucket(since, n, int(err or 0), int(tin), int(tout)) for p, n, err, tin, tout in rows}


class KeyTable(Protocol):
    """The API key rows, read into memory by `KeyStore` and reread when `version()` moves."""

    where: str  # what it is, without secrets (a path, or postgresql://host:port/db)
    shared: bool  # several hosts can use it at once (PostgreSQL)

    def watch(self) -> None:
        """The gateway will call `version()` per request: keep it cheap from now on."""

    def version(self) -> int:
        """A number that changes whenever another process or replica changed the table; called on
        every request, so it must be cheap (SQLite: `PRAGMA data_version`; PostgreSQL: a counter
        that LISTEN/NOTIFY moves, no round trip)."""

    def rows(self) -> list[KeyRow]: ...

    async def fetch(self, key_id: str) -> KeyRow | None:
        """One row, from the request path (a key another replica created a moment ago)."""

    def insert(self, row: KeyRow) -> None:
        """Raises `DuplicateName` when an active key has the row's name."""

    def update(self, key_id: str, fields: dict[str, Any]) -> None: ...

    async def aclose(self) -> None:
        """Close what belongs to the event loop (the async pool), inside that loop."""

    def close(self) -> None: ...


class AuditTable(Protocol):
    """The hash-chained audit rows; `append` is the only write, and it keeps one chain with any
    number of writers (each implementation says how)."""

    where: str
    shared: bool

    def append(self, entries: Sequence[dict[str, Any]]) -> None:
        """Chain `entries` (dicts of `_chain.FIELDS`) onto the head in one transaction; raises
        `StoreUnavailable` when that failed (nothing was written)."""

    def present(self, entries: Sequence[dict[str, Any]]) -> set[tuple[Any, ...]]:
        """Which of `entries` are already stored, as `_chain.identity` tuples (replaying a spool a
        crashed writer left behind must not write a row twice)."""

    def rows(self, *, after: int = 0, last: int | None = None) -> Iterator[dict[str, Any]]:
        """Rows (every column, hashes included) oldest first: after row id `after`, or the newest `last`."""

    def assigned(self) -> int:
        """The highest row id ever assigned (above the last row's id if rows were cut off the end)."""

    def page(self, where: AuditFilter, *, before: int | None, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` rows matching `where`, newest first, older than row id `before`."""

    def usage(self, *, since: float, bucket_s: float, principal: str | None = None) -> list[UsageBucket]:
        """Model requests (not the console's own `console.*` rows) per `bucket_s` since `since`."""

    def totals(self, *, since: float) -> dict[str, UsageBucket]:
        """Per principal since `since`: requests, errors and tokens of model requests."""

    def close(self) -> None: ...
